"""Ledger tables. An entry id is its second and 96 random bits, not a sequence: it reveals no
order that created_at does not (entries of one second are in random order, at every merchant)."""

import secrets
from datetime import date, datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


class Balance(SQLModel, table=True):
    # The card page finds a card's balances by its holders at every merchant.
    __table_args__ = (Index("ix_balance_holder", "holder"),)

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    program_id: int = Field(foreign_key="program.id", primary_key=True)
    holder: str = Field(primary_key=True, max_length=32)
    stamps: int = 0
    lifetime_stamps: int = 0
    redeemed: int = 0
    visits: int = 0
    first_visit_at: datetime
    last_visit_at: datetime
    # Cooldown and daily cap are decided from here, never by reading the ledger's history.
    last_stamp_at: datetime
    stamp_day: date
    day_stamps: int = 0
    # The visit before the latest (None: one visit so far) and the stamps that count towards
    # regulars' status (lifetime stamps since the status last lapsed): what the loyalty
    # mechanics decide from, still without reading the ledger.
    previous_visit_at: datetime | None = None
    status_stamps: int = 0


_ONLY_VOIDS = text("voids_entry_id IS NOT NULL")
_ONLY_PARTS = text("for_entry_id IS NOT NULL")


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger_entry"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        # A ledger entry can be voided at most once. Only voids are indexed: a stamp writes
        # nothing here.
        Index(
            "uq_ledger_entry_voids_entry_id",
            "voids_entry_id",
            unique=True,
            sqlite_where=_ONLY_VOIDS,
            postgresql_where=_ONLY_VOIDS,
        ),
        # The bonuses of a stamp (its undo undoes them); only bonus entries are indexed.
        Index(
            "ix_ledger_entry_for_entry_id",
            "for_entry_id",
            sqlite_where=_ONLY_PARTS,
            postgresql_where=_ONLY_PARTS,
        ),
        Index("ix_ledger_entry_merchant_holder", "merchant_id", "holder", "created_at"),
        Index("ix_ledger_entry_merchant_created", "merchant_id", "created_at"),
    )

    merchant_id: int = Field(foreign_key="merchant.id")
    id: str = Field(primary_key=True, max_length=32)
    program_id: int = Field(foreign_key="program.id")
    holder: str = Field(max_length=32)
    # stamp | bonus | redemption | void | adjustment | expiry
    kind: str = Field(max_length=16)
    delta: int
    device_id: int | None = Field(default=None, foreign_key="device.id")
    idempotency_key: str | None = Field(default=None, max_length=255)
    voids_entry_id: str | None = Field(default=None, max_length=32)
    created_at: datetime
    # A bonus: the stamp it came with, and its promotion (None: a tier's perk).
    for_entry_id: str | None = Field(default=None, max_length=32)
    promotion_id: int | None = None
    # A redemption of a reward level (None: the program's main reward).
    reward_id: int | None = None


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_record"

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    key: str = Field(primary_key=True, max_length=255)
    # Keyed per merchant: the body holds the token, and a plain hash would link merchants.
    fingerprint: str = Field(max_length=32)
    status_code: int
    response: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(index=True)


def new_entry_id(at: datetime, suffix: bytes | None = None) -> str:
    """32 hex digits: the entry's second (as created_at stores it), then 96 random bits.

    New entries go to the end of the ledger's id index instead of anywhere in it: a commit
    writes one page fewer per stamp (bench/). The id tells nothing created_at does not: entries
    of the same second are in random order, at every merchant.
    """
    return f"{int(at.timestamp()):08x}{(suffix or secrets.token_bytes(12)).hex()}"
