"""The till's API bodies: pairing a device, and what a till shows around a scan."""

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from app.inputs import Line, Text
from app.merchants.models import Program


class PairIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Text = Field(min_length=1, max_length=64)
    label: Line = Field(default="", max_length=80)


class MerchantOut(BaseModel):
    slug: str
    name: str


class DeviceOut(BaseModel):
    id: int
    label: str


class PairOut(BaseModel):
    secret: str = Field(description="The device secret: shown once, kept only by this browser")
    device: DeviceOut
    merchant: MerchantOut


class TillLevel(BaseModel):
    id: int
    stamps: int
    reward: str


class TillProgram(BaseModel):
    id: int
    name: str
    stamps_required: int
    reward: str
    max_stamps_per_scan: int
    cooldown_seconds: int
    active: bool
    ended: bool = Field(default=False, description="Archived: no stamps, rewards redeemable")
    levels: list[TillLevel] = Field(default_factory=list, description="Lower rewards")

    @classmethod
    def of(cls, p: Program, levels: Sequence[TillLevel] = ()) -> "TillProgram":
        return cls(
            id=p.id or 0, name=p.name, stamps_required=p.stamps_required, reward=p.reward_text,
            max_stamps_per_scan=p.max_stamps_per_scan, cooldown_seconds=p.cooldown_seconds,
            active=p.active, ended=p.archived_at is not None, levels=list(levels),
        )  # fmt: skip


class TillOut(BaseModel):
    merchant: MerchantOut
    device: DeviceOut
    programs: list[TillProgram]
    undo_window_seconds: int
    claim_url_prefix: str
