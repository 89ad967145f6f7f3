"""The way in: the funnel per month and where cards come from, counted per day.

Revision ID: 0013_funnel_sources
Revises: 0012_promotion_effect
Create Date: 2026-12-07
"""

from collections.abc import Sequence

revision: str = "0013_funnel_sources"
down_revision: str | None = "0012_promotion_effect"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
