"""Feedback tables. Everything is keyed by the per-merchant holder, never by the card."""

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class Feedback(SQLModel, table=True):
    __table_args__ = (
        # One feedback per visit: the latest stamp or redemption it was given for.
        UniqueConstraint("merchant_id", "visit_entry_id"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating"),
        CheckConstraint("recommend IS NULL OR recommend BETWEEN 0 AND 10", name="recommend"),
        Index("ix_feedback_merchant_created", "merchant_id", "created_at"),
        Index("ix_feedback_merchant_holder", "merchant_id", "holder", "created_at"),
        # The card page finds a card's feedback by its holders at every merchant.
        Index("ix_feedback_holder", "holder"),
    )

    merchant_id: int = Field(foreign_key="merchant.id")
    # Random, not a sequence: an id in a URL must not tell how much feedback a shop gets.
    id: str = Field(primary_key=True, max_length=32)
    holder: str = Field(max_length=32)
    visit_entry_id: str = Field(max_length=32)
    rating: int
    recommend: int | None = None
    comment: str = Field(default="", sa_column=Column(Text, nullable=False))
    # JSON list of tag keys (a default key like "service" or a merchant's own wording).
    tags: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    created_at: datetime
    updated_at: datetime
    edits: int = 0
    read_at: datetime | None = None  # the merchant has seen it
    hidden_at: datetime | None = None  # hidden as abusive; still counted
    reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    replied_at: datetime | None = None
    reply_read_at: datetime | None = None  # the card holder has seen the reply


class FeedbackSettings(SQLModel, table=True):
    """A merchant's choice of tags; without a row the default tags apply."""

    __tablename__ = "feedback_settings"

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    tags: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    updated_at: datetime


class ReviewClick(SQLModel, table=True):
    """Clicks on a merchant's public review link, per day: no card, no address, no time."""

    __tablename__ = "review_click"

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    day: date = Field(primary_key=True)
    clicks: int = 0
