"""Distinct cards behind the heat map and the device rows (suppression by cards, issue #5).

Three counting tables, keyed by merchant first, like analytics_visit: visits per local day and
hour by the gap since the card's previous visit at the same weekday and hour; visits per day by
the gap since its previous visit on the same weekday; cards stamped per day and device by the
gap since the card was last stamped there. The gaps turn them into distinct-card counts over
any period (see app/analytics/models.py). analytics_card gains `recent`, the days those gaps
are counted from. On SQLite the tables are WITHOUT ROWID.

Existing ledgers are rolled up into the new tables here (app.ledger.projections.rebuild_rollups,
limited to them and to analytics_card, whose rows it recomputes as they were plus `recent`).
The older rollups are left as they are: they still count deleted cards, which a rebuild from
the ledger would drop. Should a later migration change these tables, it rebuilds them itself
and this step (which runs today's code) must then be limited to what exists at this revision.

Revision ID: 0007_heat_cards
Revises: 0006_feedback
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007_heat_cards"
down_revision: str | None = "0006_feedback"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_hour_visit",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("gap", sa.Integer(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id", "day", "hour", "gap"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "analytics_weekday_visit",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("gap", sa.Integer(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id", "day", "gap"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "analytics_device_card",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("gap", sa.Integer(), nullable=False),
        sa.Column("cards", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id", "day", "device_id", "gap"),
        sqlite_with_rowid=False,
    )
    # A plain ADD COLUMN (no table copy): the rows keep their order and SQLite its WITHOUT ROWID.
    op.add_column(
        "analytics_card",
        sa.Column("recent", sa.Text(), nullable=False, server_default=""),
    )

    from app.analytics import models
    from app.ledger.projections import rebuild_rollups

    rebuild_rollups(
        op.get_bind(),
        tables=(models.hour_table, models.weekday_table, models.device_table, models.card_table),
    )


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN (SQLite 3.35+): a batch copy would lose WITHOUT ROWID.
    op.drop_column("analytics_card", "recent")
    op.drop_table("analytics_device_card")
    op.drop_table("analytics_weekday_visit")
    op.drop_table("analytics_hour_visit")
