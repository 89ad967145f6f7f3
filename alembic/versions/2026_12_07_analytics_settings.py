"""What the owner tells the dashboard: purchase cycle, average ticket and reward value.

Revision ID: 0014_analytics_settings
Revises: 0013_funnel_sources
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014_analytics_settings"
down_revision: str | None = "0013_funnel_sources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# All nullable: nothing entered means the dashboard derives the cycle and shows no money.
_COLUMNS = {
    "merchant": ("purchase_cycle_days",),
    "program": ("average_ticket_cents", "reward_value_cents"),
}


def upgrade() -> None:
    for table, columns in _COLUMNS.items():
        for column in columns:
            op.add_column(table, sa.Column(column, sa.Integer(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN in place (SQLite 3.35+): a batch copy of program or merchant
    # would be refused by the foreign keys that point at them.
    for table, columns in _COLUMNS.items():
        for column in columns:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
