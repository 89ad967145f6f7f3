"""Merchant area (owner sessions, login throttling, program and profile changes).

Revision ID: 0004_merchant_area
Revises: 0003_pairing
Create Date: 2026-11-23
"""

from collections.abc import Sequence

revision: str = "0004_merchant_area"
down_revision: str | None = "0003_pairing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
