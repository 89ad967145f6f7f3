"""Feedback (ratings, comments, replies, review-link clicks).

Revision ID: 0006_feedback
Revises: 0005_analytics
Create Date: 2026-11-23
"""

from collections.abc import Sequence

revision: str = "0006_feedback"
down_revision: str | None = "0005_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
