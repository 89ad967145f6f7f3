"""The till's device routes: pair a browser as a cashier device, and what the till shows."""

from fastapi import APIRouter, Depends
from sqlmodel import Session

from app.db import SessionDep, WriteSessionDep
from app.dependencies import ClockDep, SettingsDep
from app.errors import problem_responses
from app.ledger.service import reward_levels
from app.merchants.dependencies import CurrentDeviceRow
from app.merchants.models import Device, Merchant
from app.merchants.pairing import redeem_pairing_code
from app.merchants.schemas import (
    DeviceOut,
    MerchantOut,
    PairIn,
    PairOut,
    TillLevel,
    TillOut,
    TillProgram,
)
from app.merchants.service import till_programs
from app.ratelimit import rate_limited

router = APIRouter(
    prefix="/api/v1/till", tags=["till"],
    responses=problem_responses(400, 401, 404, 410, 413, 422),
)  # fmt: skip


@router.post(
    "/pair",
    status_code=201,
    response_model=PairOut,
    dependencies=[Depends(rate_limited("pairing"))],
)
def pair(body: PairIn, session: WriteSessionDep, clock: ClockDep) -> PairOut:
    """Redeem a one-time pairing code: this browser becomes a cashier device."""
    paired = redeem_pairing_code(session=session, code=body.code, now=clock(), label=body.label)
    assert paired.device.id is not None
    return PairOut(
        secret=paired.secret,
        device=DeviceOut(id=paired.device.id, label=paired.device.label),
        merchant=MerchantOut(slug=paired.merchant.slug, name=paired.merchant.name),
    )


@router.get("", response_model=TillOut)
def till_info(device: CurrentDeviceRow, session: SessionDep, settings: SettingsDep) -> TillOut:
    """What the till shows around a scan: its merchant, its name, the programs, the undo window."""
    merchant = _merchant(session, device)
    programs = till_programs(session=session, merchant_id=merchant.id or 0)
    levels = reward_levels(session=session, program_ids=[p.id or 0 for p in programs])
    return TillOut(
        merchant=MerchantOut(slug=merchant.slug, name=merchant.name),
        device=DeviceOut(id=device.id or 0, label=device.label),
        programs=[
            TillProgram.of(
                p,
                [
                    TillLevel(id=lv.id, stamps=lv.stamps, reward=lv.reward_text)
                    for lv in levels.get(p.id or 0, [])
                ],
            )
            for p in programs
        ],
        undo_window_seconds=settings.undo_window_seconds,
        claim_url_prefix=f"{settings.base_url}/k/",
    )


def _merchant(session: Session, device: Device) -> Merchant:
    merchant = session.get(Merchant, device.merchant_id)
    assert merchant is not None
    return merchant
