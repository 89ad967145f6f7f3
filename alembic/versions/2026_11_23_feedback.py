"""Feedback (ratings, comments, replies, review-link clicks).

Every table leads with merchant_id and holds per-merchant holders only. Feedback ids are random
strings, like ledger entry ids; review-link clicks are counted per day with nothing else.

Revision ID: 0006_feedback
Revises: 0005_analytics
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0006_feedback"
down_revision: str | None = "0005_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("visit_entry_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("recommend", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("edits", sa.Integer(), nullable=False),
        sa.Column("read_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("hidden_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("replied_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("reply_read_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="rating"),
        # Named through the metadata's convention: ck_feedback_recommend.
        sa.CheckConstraint("recommend IS NULL OR recommend BETWEEN 0 AND 10", name="recommend"),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("merchant_id", "visit_entry_id"),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(
            "ix_feedback_merchant_created", ["merchant_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_feedback_merchant_holder", ["merchant_id", "holder", "created_at"], unique=False
        )
        batch_op.create_index("ix_feedback_holder", ["holder"], unique=False)

    op.create_table(
        "feedback_settings",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id"),
    )
    op.create_table(
        "review_click",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id", "day"),
    )


def downgrade() -> None:
    op.drop_table("review_click")
    op.drop_table("feedback_settings")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_holder")
        batch_op.drop_index("ix_feedback_merchant_holder")
        batch_op.drop_index("ix_feedback_merchant_created")
    op.drop_table("feedback")
