"""What the owner tells the dashboard: purchase cycle, average ticket and reward value.

Revision ID: 0014_analytics_settings
Revises: 0013_funnel_sources
Create Date: 2026-12-07
"""

from collections.abc import Sequence

revision: str = "0014_analytics_settings"
down_revision: str | None = "0013_funnel_sources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
