"""The claim code table. The code itself is never stored: only a keyed hash of it."""

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class ClaimCode(SQLModel, table=True):
    __tablename__ = "claim_code"
    # Old codes are swept per merchant by their expiry.
    __table_args__ = (Index("ix_claim_code_merchant_expires", "merchant_id", "expires_at"),)

    merchant_id: int = Field(foreign_key="merchant.id")
    # A customer's phone finds the code by its hash alone: it does not know the merchant.
    code_hash: str = Field(primary_key=True, max_length=32)
    program_id: int = Field(foreign_key="program.id")
    # The till that made the code: the stamp is booked on it, as if it had scanned the card.
    device_id: int = Field(foreign_key="device.id")
    count: int
    created_at: datetime
    expires_at: datetime
    claimed_at: datetime | None = None
    # The stamp the claim made: lets the same card retry and get its answer again.
    entry_id: str | None = Field(default=None, max_length=32)
