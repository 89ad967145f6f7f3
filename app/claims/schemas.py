"""Claim code API bodies."""

from pydantic import BaseModel, ConfigDict, Field

from app.inputs import Id, Text


class ClaimCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(default=1, ge=1, le=100)
    program_id: Id | None = None


class ClaimProgram(BaseModel):
    id: int
    name: str
    stamps_required: int
    reward: str


class ClaimCreated(BaseModel):
    code: str
    claim_url: str
    expires_at: str
    count: int
    program: ClaimProgram


class ClaimStatus(BaseModel):
    claimed: bool
    expired: bool
    expires_at: str


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Text = Field(min_length=1, max_length=4096, description="Card token or card URL")


class ClaimMerchant(BaseModel):
    slug: str
    name: str


class ClaimResult(BaseModel):
    entry_id: str
    stamps: int
    rewards_available: int
    merchant: ClaimMerchant
    program: ClaimProgram
