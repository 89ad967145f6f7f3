"""Claim codes (single-use QR for N stamps, made by a till, claimed by a card).

Revision ID: 0002_claims
Revises: 060382521455
Create Date: 2026-11-23
"""

from collections.abc import Sequence

revision: str = "0002_claims"
down_revision: str | None = "060382521455"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
