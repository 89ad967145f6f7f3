"""Did a promotion work: visits per promotion, day and group (treated or held out), and the
bonus stamps each promotion gave per day. Filled from existing ledgers by the next revision's
rebuild (which runs after the funnel's columns exist).

Revision ID: 0012_promotion_effect
Revises: 0011_loyalty
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012_promotion_effect"
down_revision: str | None = "0011_loyalty"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_promotion",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("promotion_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("held_out", sa.Integer(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("entered", sa.Integer(), nullable=False),
        sa.Column("returned", sa.Integer(), nullable=False),
        sa.Column("bonus_stamps", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.ForeignKeyConstraint(["promotion_id"], ["promotion.id"]),
        sa.PrimaryKeyConstraint("merchant_id", "promotion_id", "day", "held_out"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("analytics_promotion")
