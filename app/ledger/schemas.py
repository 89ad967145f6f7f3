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
    reward_id: Id | None = Field(
        default=None, description="A reward level of the program; without it, its main reward"
    )


class ProgramOut(BaseModel):
    id: int
    name: str
    stamps_required: int
    reward: str


class BonusOut(BaseModel):
    promotion_id: int | None = Field(description="None: the perk of the card's tier")
    title: str
    stamps: int


class RewardOut(BaseModel):
    id: int | None = Field(description="The reward level; None: the program's main reward")
    stamps: int
    text: str


class EntryOut(BaseModel):
    entry_id: str
    kind: str
    delta: int
    stamps: int = Field(description="The card's stamps in this program now, bonuses included")
    rewards_available: int
    program: ProgramOut
    voids_entry_id: str | None = None
    bonus: list[BonusOut] = Field(
        default_factory=list, description="Stamps: the promotions' and tier's bonus stamps"
    )
    reward: RewardOut | None = Field(default=None, description="Redemptions: what was redeemed")


class CardBalanceOut(BaseModel):
    program_id: int
    stamps: int
    rewards_available: int
    # Seconds until this card may be stamped again in this program (0: now).
    cooldown_remaining: int
    last_stamp_at: datetime | None


class TillTierOut(BaseModel):
    name: str
    perk: str = Field(description="What the cashier gives this regular (may be empty)")


class TillCardOut(BaseModel):
    token: str
    balances: list[CardBalanceOut]
    tier: TillTierOut | None = None
    code: str = Field(
        description="The card's short code at this shop: 4 base32 characters, per shop"
    )
