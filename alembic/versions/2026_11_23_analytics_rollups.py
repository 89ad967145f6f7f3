"""Analytics rollups (daily and per-holder-month aggregates kept with the ledger).

Revision ID: 0005_analytics
Revises: 0004_merchant_area
Create Date: 2026-11-23
"""

from collections.abc import Sequence

revision: str = "0005_analytics"
down_revision: str | None = "0004_merchant_area"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
