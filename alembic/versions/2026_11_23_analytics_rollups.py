"""Analytics rollups (daily and per-holder-month aggregates kept with the ledger).

Five tables, all keyed by merchant first: activity per local day, hour and device; visits per
local day by the gap since the card's previous visit; cohorts (first month x month); cards per
number of stamps held (the program's liability); and the per-holder visit days the others are
derived from. Days and months are integers (see app/analytics/models.py). Existing ledgers are
rolled up by app.ledger.projections.rebuild_rollups. On SQLite the tables are WITHOUT ROWID
(stored in key order, for the dashboard's range reads).

Revision ID: 0005_analytics
Revises: 0004_merchant_area
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0005_analytics"
down_revision: str | None = "0004_merchant_area"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_activity",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("scans", sa.Integer(), nullable=False),
        sa.Column("stamps", sa.Integer(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("redemptions", sa.Integer(), nullable=False),
        sa.Column("voids", sa.Integer(), nullable=False),
        sa.Column("rewards_earned", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id", "day", "hour", "device_id"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "analytics_visit",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("gap", sa.Integer(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id", "day", "gap"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "analytics_cohort",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("first_month", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("cards", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id", "first_month", "month"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "analytics_holding",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("stamps", sa.Integer(), nullable=False),
        sa.Column("cards", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.ForeignKeyConstraint(["program_id"], ["program.id"]),
        sa.PrimaryKeyConstraint("merchant_id", "program_id", "stamps"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "analytics_card",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("first_day", sa.Integer(), nullable=False),
        sa.Column("second_day", sa.Integer(), nullable=True),
        sa.Column("last_day", sa.Integer(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id", "holder"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("analytics_card", schema=None) as batch_op:
        batch_op.create_index(
            "ix_analytics_card_first_day", ["merchant_id", "first_day", "second_day"]
        )


def downgrade() -> None:
    with op.batch_alter_table("analytics_card", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_card_first_day")
    op.drop_table("analytics_card")
    op.drop_table("analytics_holding")
    op.drop_table("analytics_cohort")
    op.drop_table("analytics_visit")
    op.drop_table("analytics_activity")
