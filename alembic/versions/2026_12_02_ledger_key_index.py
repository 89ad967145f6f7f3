"""No unique index on the ledger's idempotency keys.

ledger_entry had a unique constraint on (merchant_id, idempotency_key). The idempotency record
written in the same transaction has that very primary key, so two entries for one key could
never commit anyway; the constraint only made each stamp insert a random key into one more
index (a page written per stamp; the ledger writer did about a tenth more work, bench/). No query
looks entries up by key. On SQLite the table is rebuilt to drop it (a copy of the ledger, once).

Revision ID: 0009_ledger_key_index
Revises: 0008_void_index
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_ledger_key_index"
down_revision: str | None = "0008_void_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "uq_ledger_entry_merchant_id_idempotency_key"


def upgrade() -> None:
    with op.batch_alter_table("ledger_entry") as batch:
        batch.drop_constraint(NAME, type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("ledger_entry") as batch:
        batch.create_unique_constraint(NAME, ["merchant_id", "idempotency_key"])
