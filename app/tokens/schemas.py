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


class MerchantRef(BaseModel):
    slug: str
    name: str


class ProgramRef(BaseModel):
    id: int
    name: str
    stamps_required: int
    reward: str


class CardBalance(BaseModel):
    merchant: MerchantRef
    program: ProgramRef
    stamps: int
    rewards_available: int
    last_visit_at: str


class CardView(BaseModel):
    cards: list[CardBalance]
    recovery_code: str
    card_url: str
