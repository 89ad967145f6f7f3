"""The card table: keyed by a keyed hash of the card id, with only day-precision dates."""

from datetime import date

from sqlalchemy import Column, false
from sqlmodel import Field, LargeBinary, SQLModel


class Card(SQLModel, table=True):
    ref: str = Field(primary_key=True, max_length=32)
    created_day: date
    last_seen_day: date
    # The merchants this card has visited, sealed under a key derived from the card id.
    sealed_wallet: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    deleted_day: date | None = None
    # Printed cards are never purged as idle (no phone ever sees them: see purge_idle_cards).
    printed: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
