"""Merchant area (owner sessions, login throttling, program and profile changes).

owner_session holds only a keyed hash of each session cookie; login_throttle counts failed
logins per keyed hash of an e-mail address (never an IP address). Program and profile changes
need no new columns: program and merchant already hold every setting.

Revision ID: 0004_merchant_area
Revises: 0003_pairing
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0004_merchant_area"
down_revision: str | None = "0003_pairing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "owner_session",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        # Keyed BLAKE2b of the cookie value, never the value itself.
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.ForeignKeyConstraint(["owner_id"], ["owner.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("owner_session", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_owner_session_merchant_id"), ["merchant_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_owner_session_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "login_throttle",
        sa.Column("email_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("locked_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("email_hash"),
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
    with op.batch_alter_table("owner_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_owner_session_owner_id"))
        batch_op.drop_index(batch_op.f("ix_owner_session_merchant_id"))
    op.drop_table("owner_session")
