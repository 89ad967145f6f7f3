"""Claim codes (single-use QR for N stamps, made by a till, claimed by a card).

Revision ID: 0002_claims
Revises: 060382521455
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0002_claims"
down_revision: str | None = "060382521455"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Only a keyed hash of the code is stored; a customer's phone finds it by that hash alone.
    op.create_table(
        "claim_code",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("claimed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("entry_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchant.id"], name=op.f("fk_claim_code_merchant_id_merchant")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_claim_code_program_id_program")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_claim_code_device_id_device")
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_claim_code")),
    )
    with op.batch_alter_table("claim_code", schema=None) as batch_op:
        batch_op.create_index(
            "ix_claim_code_merchant_expires", ["merchant_id", "expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("claim_code", schema=None) as batch_op:
        batch_op.drop_index("ix_claim_code_merchant_expires")
    op.drop_table("claim_code")
