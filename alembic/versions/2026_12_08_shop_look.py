"""Each shop looks like itself: an accent colour and a logo (re-encoded PNG) per merchant.

Revision ID: 0015_shop_look
Revises: 0014_analytics_settings
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0015_shop_look"
down_revision: str | None = "0014_analytics_settings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Both nullable: a shop that set nothing looks like treu.
_COLUMNS = {"accent_color": 7, "logo_version": 16}


def upgrade() -> None:
    for column, length in _COLUMNS.items():
        op.add_column(
            "merchant",
            sa.Column(column, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=True),
        )
    op.create_table(
        "merchant_logo",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id"),
    )


def downgrade() -> None:
    op.drop_table("merchant_logo")
    # ALTER TABLE … DROP COLUMN in place (SQLite 3.35+): a batch copy of merchant would be
    # refused by the foreign keys that point at it.
    for column in _COLUMNS:
        op.execute(f"ALTER TABLE merchant DROP COLUMN {column}")
