"""The merchant's JSON API for the loyalty levers: programs and their reward levels, tiers,
promotions. Field names follow the CLI's flags (`treu program|tier|promotion create`)."""

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.inputs import Day, Id, Line

Kind = Literal["multiplier", "welcome", "winback", "anniversary", "campaign"]


class RewardLevelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stamps: int = Field(ge=1, le=100, description="Fewer than the program's stamps_required")
    reward: Line = Field(min_length=1, max_length=200)


class RewardLevelPublic(BaseModel):
    id: int
    stamps: int
    reward: str


class ProgramCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Line = Field(min_length=1, max_length=120)
    stamps_required: int = Field(ge=1, le=100)
    reward: Line = Field(min_length=1, max_length=200)
    levels: list[RewardLevelIn] = Field(default_factory=list, max_length=5)
    max_stamps_per_scan: int = Field(default=10, ge=1, le=100)
    cooldown_seconds: int = Field(default=60, ge=0, le=86_400)
    daily_cap: int = Field(default=0, ge=0, le=1000, description="0: no cap")
    expire_months: int = Field(
        default=0, ge=0, le=60, description="Stamps expire after months without a visit; 0: never"
    )


class ProgramUpdate(BaseModel):
    """The rules to change; what is left out stays as it is."""

    model_config = ConfigDict(extra="forbid")
    name: Line | None = Field(default=None, min_length=1, max_length=120)
    stamps_required: int | None = Field(
        default=None, ge=1, le=100,
        description="More: every card's stamps grow in proportion; fewer: rewards come sooner",
    )  # fmt: skip
    reward: Line | None = Field(default=None, min_length=1, max_length=200)
    max_stamps_per_scan: int | None = Field(default=None, ge=1, le=100)
    cooldown_seconds: int | None = Field(default=None, ge=0, le=86_400)
    daily_cap: int | None = Field(default=None, ge=0, le=1000)
    expire_months: int | None = Field(default=None, ge=0, le=60)


class LevelsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    levels: list[RewardLevelIn] = Field(max_length=5, description="Every level; [] removes them")


class ProgramPublic(BaseModel):
    id: int
    name: str
    stamps_required: int
    reward: str
    levels: list[RewardLevelPublic]
    max_stamps_per_scan: int
    cooldown_seconds: int
    daily_cap: int
    expire_months: int
    active: bool = Field(description="The till adds stamps in it now")
    status: Literal["running", "paused", "archived", "closed"] = Field(
        description="archived: no stamps, rewards redeemable; closed: stamps booked out"
    )
    archived_at: datetime | None
    closed_at: datetime | None


class TierCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Line = Field(min_length=1, max_length=60, examples=["Stammgast"])
    lifetime_stamps: int = Field(ge=1, le=100_000, description="Stamps collected at the shop")
    bonus_per_visit: int = Field(default=0, ge=0, le=10, description="Extra stamps per visit")
    perk: Line = Field(default="", max_length=200, description="What the cashier sees")


class TierPublic(BaseModel):
    id: int
    name: str
    lifetime_stamps: int
    bonus_per_visit: int
    perk: str


class TierLapse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    months: int = Field(ge=0, le=60, description="Status lapses after months away; 0: never")


class TierList(BaseModel):
    tiers: list[TierPublic]
    lapse_months: int = Field(description="Status lapses after months without a visit; 0: never")


class PromotionCreate(BaseModel):
    """As `treu promotion create`: only the settings of its kind (factor, days, from, to for a
    multiplier; stamps for the others; away_days for a winback)."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind
    title: Line = Field(default="", max_length=80, description="Default: by kind")
    program_id: Id | None = Field(default=None, description="Default: every program")
    factor: int | None = Field(default=None, ge=2, le=5, description="multiplier [2]")
    stamps: int | None = Field(default=None, ge=1, le=20, description="Bonus stamps [1]")
    days: list[Line] | None = Field(
        default=None, max_length=7, examples=[["tue", "wed", "thu"]],
        description="multiplier: weekdays (mon … sun) [every day]",
    )  # fmt: skip
    from_: Line | None = Field(
        default=None, alias="from", max_length=5, examples=["14:00"],
        description="multiplier: from this time (shop time, HH:MM) …",
    )  # fmt: skip
    to: Line | None = Field(default=None, max_length=5, examples=["16:00"], description="… to")
    away_days: int | None = Field(default=None, ge=1, le=3650, description="winback: days away")
    starts: Day | None = Field(default=None, description="First day (shop time)")
    ends: Day | None = Field(default=None, description="Last day")
    budget: int = Field(default=0, ge=0, le=10_000_000, description="Bonus stamps; 0: no limit")
    holdout_percent: int = Field(
        default=0, ge=0, le=50, description="A fixed share of cards that gets no bonus"
    )


class PromotionPublic(BaseModel):
    id: int
    kind: Kind
    title: str
    program_id: int | None
    factor: int | None
    stamps: int | None
    days: list[str] | None
    from_: str | None = Field(alias="from")
    to: str | None
    away_days: int | None
    starts: date | None
    ends: date | None
    budget: int
    spent: int = Field(description="Bonus stamps given so far (an undo gives them back)")
    holdout_percent: int
    status: Literal["running", "scheduled", "spent", "over", "ended"]
    ended_at: datetime | None
    summary: str = Field(description="In plain words, in the request's language")
