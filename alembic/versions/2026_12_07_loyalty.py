"""Loyalty mechanics: reward levels, tiers and promotions; programs that expire, are archived
or closed; bonus entries in the ledger; what the balance keeps for the mechanics to decide from.

Revision ID: 0011_loyalty
Revises: 0010_login_brake
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0011_loyalty"
down_revision: str | None = "0010_login_brake"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_string = sqlmodel.sql.sqltypes.AutoString
_moment = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "reward_level",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("stamps", sa.Integer(), nullable=False),
        sa.Column("reward_text", _string(length=200), nullable=False),
        sa.Column("created_at", _moment(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.ForeignKeyConstraint(["program_id"], ["program.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reward_level_merchant_id", "reward_level", ["merchant_id"])
    op.create_index("ix_reward_level_program_id", "reward_level", ["program_id"])
    op.create_table(
        "tier",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", _string(length=60), nullable=False),
        sa.Column("lifetime_stamps", sa.Integer(), nullable=False),
        sa.Column("bonus_per_visit", sa.Integer(), nullable=False),
        sa.Column("perk_text", _string(length=200), nullable=False),
        sa.Column("created_at", _moment(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tier_merchant_id", "tier", ["merchant_id"])
    op.create_table(
        "promotion",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", _string(length=16), nullable=False),
        sa.Column("title", _string(length=80), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=True),
        sa.Column("factor", sa.Integer(), nullable=False),
        sa.Column("stamps", sa.Integer(), nullable=False),
        sa.Column("weekdays", sa.Integer(), nullable=False),
        sa.Column("from_minute", sa.Integer(), nullable=True),
        sa.Column("to_minute", sa.Integer(), nullable=True),
        sa.Column("away_days", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("budget", sa.Integer(), nullable=False),
        sa.Column("spent", sa.Integer(), nullable=False),
        sa.Column("holdout_percent", sa.Integer(), nullable=False),
        sa.Column("holdout_key", _string(length=64), nullable=False),
        sa.Column("created_at", _moment(), nullable=False),
        sa.Column("ended_at", _moment(), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.ForeignKeyConstraint(["program_id"], ["program.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_promotion_merchant_id", "promotion", ["merchant_id"])
    # Added in place (no table copy on SQLite, which other tables' foreign keys would refuse,
    # and the ledger and balances may be large).
    op.add_column(
        "merchant",
        sa.Column("tier_lapse_months", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "program", sa.Column("expire_months", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("program", sa.Column("archived_at", _moment(), nullable=True))
    op.add_column("program", sa.Column("closed_at", _moment(), nullable=True))
    op.add_column("balance", sa.Column("previous_visit_at", _moment(), nullable=True))
    op.add_column(
        "balance",
        sa.Column("status_stamps", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute("UPDATE balance SET status_stamps = lifetime_stamps")
    op.add_column("ledger_entry", sa.Column("for_entry_id", _string(length=32), nullable=True))
    op.add_column("ledger_entry", sa.Column("promotion_id", sa.Integer(), nullable=True))
    op.add_column("ledger_entry", sa.Column("reward_id", sa.Integer(), nullable=True))
    only_parts = sa.text("for_entry_id IS NOT NULL")
    op.create_index(
        "ix_ledger_entry_for_entry_id",
        "ledger_entry",
        ["for_entry_id"],
        sqlite_where=only_parts,
        postgresql_where=only_parts,
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_entry_for_entry_id", table_name="ledger_entry")
    # ALTER TABLE … DROP COLUMN in place (SQLite 3.35+): a batch copy of program or merchant
    # would be refused by the foreign keys that point at them.
    dropped = {
        "ledger_entry": ("reward_id", "promotion_id", "for_entry_id"),
        "balance": ("status_stamps", "previous_visit_at"),
        "program": ("closed_at", "archived_at", "expire_months"),
        "merchant": ("tier_lapse_months",),
    }
    for table, columns in dropped.items():
        for column in columns:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    op.drop_table("promotion")
    op.drop_table("tier")
    op.drop_table("reward_level")
