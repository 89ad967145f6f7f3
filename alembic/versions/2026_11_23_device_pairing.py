"""Device pairing codes (one-time, 10 minutes).

Revision ID: 0003_pairing
Revises: 0002_claims
Create Date: 2026-11-23
"""

from collections.abc import Sequence

revision: str = "0003_pairing"
down_revision: str | None = "0002_claims"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
