"""The levers a shop pulls: reward levels of a program, tiers and promotions.

Every table leads with merchant_id (the shard key) and holds the shop's own settings only:
nothing here is per card. Which card gets a bonus is decided at stamp time from the card's
per-shop balance row (app.loyalty.rules) and booked in the ledger as a `bonus` entry.
"""

from datetime import date, datetime

from sqlmodel import Field, SQLModel

# Promotion kinds, as the API, the CLI and the ledger's rules name them.
KINDS = ("multiplier", "welcome", "winback", "anniversary", "campaign")


class RewardLevel(SQLModel, table=True):
    """A lower reward on a program's way to its main reward (e.g. 5 stamps → a small coffee).
    Redeeming it deducts its stamps; the main reward stays the program's stamps_required."""

    __tablename__ = "reward_level"

    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    id: int | None = Field(default=None, primary_key=True)
    program_id: int = Field(foreign_key="program.id", index=True)
    stamps: int = Field(ge=1, le=100)
    reward_text: str = Field(max_length=200)
    created_at: datetime


class Tier(SQLModel, table=True):
    """Regulars' status by stamps collected at the shop (redemptions never lower them)."""

    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=60)
    lifetime_stamps: int = Field(ge=1, le=100_000)
    # Extra stamps on every visit (booked as a bonus entry); 0: none.
    bonus_per_visit: int = Field(default=0, ge=0, le=10)
    # What the cashier sees and the card page says (e.g. "10 % on cakes"); "": none.
    perk_text: str = Field(default="", max_length=200)
    created_at: datetime


class Promotion(SQLModel, table=True):
    """Bonus stamps the server adds at stamp time when the promotion's rule holds.

    kind: multiplier (every stamp counts `factor` times on `weekdays` between `from_minute`
    and `to_minute`, shop time), welcome (+stamps on a card's first visit here), winback
    (+stamps on the first visit after at least `away_days`), anniversary (+stamps on the first
    visit a year after the card's first visit here), campaign (+stamps per visit).
    """

    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    title: str = Field(max_length=80)
    # None: every program of the shop.
    program_id: int | None = Field(default=None, foreign_key="program.id")
    factor: int = Field(default=2, ge=2, le=5)
    stamps: int = Field(default=1, ge=1, le=20)
    # Bit i (Monday = 0) set: the promotion runs on that weekday. 127: every day.
    weekdays: int = Field(default=127, ge=1, le=127)
    # Minutes after local midnight, [from, to); None: all day.
    from_minute: int | None = Field(default=None, ge=0, le=1440)
    to_minute: int | None = Field(default=None, ge=0, le=1440)
    away_days: int = Field(default=0, ge=0, le=3650)
    # Shop-local dates, inclusive; None: open.
    starts_on: date | None = None
    ends_on: date | None = None
    # Bonus stamps in total; 0: no limit. `spent` counts what was given (an undo gives back).
    budget: int = Field(default=0, ge=0, le=10_000_000)
    spent: int = 0
    # A fixed share of cards (by a keyed hash of holder and promotion) that gets no bonus, so
    # the shop can see whether the promotion changed anything. The key is this row's own.
    holdout_percent: int = Field(default=0, ge=0, le=50)
    holdout_key: str = Field(max_length=64)
    created_at: datetime
    ended_at: datetime | None = None
