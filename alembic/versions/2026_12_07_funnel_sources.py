"""The way in: the funnel per day of the cards' first visit and where cards come from.

analytics_funnel counts, per merchant, local day and step, the cards that reached each step of
the funnel (first visit here, second visit, first reward, first redemption; `day` is the day of
their first visit) and where cards came from (`day` is the day it happened: a card made from
the shop's page, or a card's first visit here by claim code, as a printed card, as an older
card or as a card made that day). analytics_card gains `steps` (the funnel steps a card has
reached past its visits) and `source` (how it came to the shop). On SQLite the table is
WITHOUT ROWID.

Existing ledgers are rolled up into the funnel here (app.ledger.projections.rebuild_rollups,
limited to it and to analytics_card, whose rows it recomputes as they were plus `steps`).
Sources start now: the ledger does not say how a card came. Should a later migration change
these tables, it rebuilds them itself and this step (which runs today's code) must then be
limited to what exists at this revision.

Revision ID: 0013_funnel_sources
Revises: 0012_promotion_effect
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0013_funnel_sources"
down_revision: str | None = "0012_promotion_effect"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_funnel",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("cards", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id", "day", "step"),
        sqlite_with_rowid=False,
    )
    # Plain ADD COLUMNs (no table copy): the rows keep their order and SQLite its WITHOUT ROWID.
    for column in ("steps", "source"):
        op.add_column(
            "analytics_card",
            sa.Column(column, sa.Integer(), nullable=False, server_default="0"),
        )

    from app.analytics import models
    from app.ledger.projections import rebuild_rollups

    # Promotions' trials too: the table came with the previous revision, and bonuses and
    # hold-outs with the one before.
    tables = (models.funnel_table, models.card_table, models.promotion_table)
    rebuild_rollups(op.get_bind(), tables=tables)


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN in place (SQLite 3.35+).
    for column in ("source", "steps"):
        op.execute(f"ALTER TABLE analytics_card DROP COLUMN {column}")
    op.drop_table("analytics_funnel")
