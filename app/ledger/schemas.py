"""Ledger API bodies."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.inputs import Id, Text


class StampIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Text = Field(min_length=1, max_length=4096, description="Card token or card URL")
    count: int = Field(default=1, ge=1, le=100)
    program_id: Id | None = None


class RedemptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Text = Field(min_length=1, max_length=4096, description="Card token or card URL")
    program_id: Id | None = None


class ProgramOut(BaseModel):
    id: int
    name: str
    stamps_required: int
    reward: str


class EntryOut(BaseModel):
    entry_id: str
    kind: str
    delta: int
    stamps: int
    rewards_available: int
    program: ProgramOut
    voids_entry_id: str | None = None


class CardBalanceOut(BaseModel):
    program_id: int
    stamps: int
    rewards_available: int
    # Seconds until this card may be stamped again in this program (0: now).
    cooldown_remaining: int
    last_stamp_at: datetime | None


class TillCardOut(BaseModel):
    token: str
    balances: list[CardBalanceOut]
