"""Cards remember whether they were printed, so that idle one-tap cards can be purged.

A card made by one tap that no shop ever stamped (as far as its own page saw) and that was not
seen for 30 days is removed by the maintenance task: a script could otherwise make cards by the
million. A printed card is never seen by a phone, so it is never taken for an idle one.

Revision ID: 0009_printed_cards
Revises: 0008_void_index
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009_printed_cards"
down_revision: str | None = "0008_void_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN with a default: existing cards count as not printed, which only makes
    # them candidates when their page never saw a shop and they were not seen for 30 days.
    op.add_column(
        "card", sa.Column("printed", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("card") as batch:
        batch.drop_column("printed")
