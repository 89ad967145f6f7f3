"""Card API bodies."""

from pydantic import BaseModel, ConfigDict, Field

from app.inputs import Text


class CardCreated(BaseModel):
    token: str
    card_url: str
    recovery_code: str


class RestoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recovery_code: Text = Field(min_length=1, max_length=100)


class CardShop(BaseModel):
    slug: str
    name: str
    # How the shop looks: its accent colour (#rrggbb) and logo address; None: treu's own.
    accent_color: str | None = None
    logo_url: str | None = None


class ProgramRef(BaseModel):
    id: int
    name: str
    stamps_required: int
    reward: str


class LevelOut(BaseModel):
    id: int
    stamps: int
    reward: str
    available: bool = Field(description="The card has the stamps to redeem this level now")


class TierOut(BaseModel):
    name: str
    perk: str


class NextTierOut(BaseModel):
    name: str
    lifetime_stamps_needed: int = Field(description="Stamps still to collect at this shop")


class BonusShown(BaseModel):
    promotion_id: int | None = Field(description="None: the perk of the card's tier")
    title: str
    stamps: int


class CardBalance(BaseModel):
    merchant: CardShop
    code: str = Field(
        default="",
        description="The card's short code at this shop: 4 base32 characters, per shop",
    )
    program: ProgramRef
    stamps: int
    rewards_available: int
    lifetime_stamps: int = Field(
        default=0, description="Stamps earned here in this program, bonuses included, ever"
    )
    redeemed: int = Field(default=0, description="Rewards redeemed here in this program")
    last_visit_at: str
    levels: list[LevelOut] = Field(
        default_factory=list, description="Lower rewards on the way to the main one"
    )
    tier: TierOut | None = None
    next_tier: NextTierOut | None = None
    expires_on: str | None = Field(
        default=None, description="The stamps expire on this day unless the card comes back"
    )
    ended: bool = Field(default=False, description="No more stamps; rewards stay redeemable")
    bonus: list[BonusShown] = Field(
        default_factory=list,
        description="Bonus stamps that came with the latest stamp (shown for minutes after it)",
    )


class CardView(BaseModel):
    cards: list[CardBalance]
    recovery_code: str
    card_url: str
