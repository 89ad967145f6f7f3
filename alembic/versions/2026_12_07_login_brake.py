"""login_throttle no longer locks an account: it only counts failures from all clients together.

Five wrong passwords from anyone used to lock the owner out (locked_until). The lock is now per
account and client address bucket, held in memory only (app/merchants/throttle.py); the table
keeps the count per keyed e-mail hash that brakes guessing from many addresses, and rows older
than a day are purged. Nothing to carry over: a lock in progress simply ends.

Revision ID: 0010_login_brake
Revises: 0009_printed_cards
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0010_login_brake"
down_revision: str | None = "0009_printed_cards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite copies the (small) table, PostgreSQL drops the column in place.
    with op.batch_alter_table("login_throttle") as batch:
        batch.drop_column("locked_until")


def downgrade() -> None:
    with op.batch_alter_table("login_throttle") as batch:
        batch.add_column(
            sa.Column("locked_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
