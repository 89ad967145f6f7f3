"""Only voids in the index that lets an entry be voided once.

The unique constraint on ledger_entry.voids_entry_id indexed every entry, though only a void
has a value there: each stamp paid for an index entry that no query reads. A partial unique
index (voids_entry_id IS NOT NULL) keeps the rule, and finding an entry's void, with none of it.
On SQLite the table is rebuilt to drop the constraint (a copy of the ledger, once).

Revision ID: 0008_void_index
Revises: 0007_heat_cards
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008_void_index"
down_revision: str | None = "0007_heat_cards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "uq_ledger_entry_voids_entry_id"
ONLY_VOIDS = sa.text("voids_entry_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("ledger_entry") as batch:
        batch.drop_constraint(NAME, type_="unique")
    op.create_index(
        NAME,
        "ledger_entry",
        ["voids_entry_id"],
        unique=True,
        sqlite_where=ONLY_VOIDS,
        postgresql_where=ONLY_VOIDS,
    )


def downgrade() -> None:
    op.drop_index(NAME, "ledger_entry")
    with op.batch_alter_table("ledger_entry") as batch:
        batch.create_unique_constraint(NAME, ["voids_entry_id"])
