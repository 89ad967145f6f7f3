"""Claim code routes: a till makes a code and watches it; a card holder claims it."""

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlmodel import Session

from app.claims import service
from app.claims.models import ClaimCode
from app.claims.schemas import (
    ClaimCreate,
    ClaimCreated,
    ClaimIn,
    ClaimMerchant,
    ClaimProgram,
    ClaimResult,
    ClaimStatus,
)
from app.db import SessionDep, WriteSessionDep
from app.errors import AppError, problem_responses
from app.ledger.router import IdempotencyKey, NotACard, _check_key
from app.ledger.service import Command
from app.merchants.dependencies import CurrentDevice
from app.merchants.models import Merchant
from app.tokens.crypto import TokenError, card_ref, find_card, holder_for

router = APIRouter(prefix="/api/v1/claims", tags=["claims"])

_RESPONSES = problem_responses(400, 401, 404, 409, 410, 413, 422, 429)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@router.post("", status_code=201, response_model=ClaimCreated, responses=_RESPONSES)
def create_claim(
    request: Request,
    device: CurrentDevice,
    session: WriteSessionDep,
    body: ClaimCreate | None = None,
    key: IdempotencyKey = None,
) -> ClaimCreated:
    """Make a single-use code for `count` stamps; the till shows `claim_url` as a QR."""
    _check_key(key)
    body = body or ClaimCreate()
    state = request.app.state
    try:
        new = service.create_claim(
            session=session, keyring=state.keyring, merchant_id=device.merchant_id,
            device_id=device.device_id, count=body.count, program_id=body.program_id,
            idempotency_key=key, now=state.clock(), ttl_seconds=state.settings.claim_ttl_seconds,
        )  # fmt: skip
    except AppError as refusal:
        if refusal.code == "device-revoked":
            state.device_cache.clear()
        raise
    program = new.program
    return ClaimCreated(
        code=new.code,
        claim_url=f"{state.settings.base_url}/k/{new.code}",
        expires_at=_iso(new.claim.expires_at),
        count=new.claim.count,
        program=ClaimProgram(
            id=program.id or 0,
            name=program.name,
            stamps_required=program.stamps_required,
            reward=program.reward_text,
        ),
    )


@router.get("/{code}", response_model=ClaimStatus, responses=_RESPONSES)
def claim_status(
    code: str, request: Request, device: CurrentDevice, session: SessionDep
) -> ClaimStatus:
    """Whether a code of this merchant was claimed (the till polls this to say so)."""
    state = request.app.state
    claim = service.claim_status(
        session=session, keyring=state.keyring, merchant_id=device.merchant_id, code=code
    )
    return ClaimStatus(
        claimed=claim.claimed_at is not None,
        expired=claim.claimed_at is None and claim.expires_at <= state.clock(),
        expires_at=_iso(claim.expires_at),
    )


def _find(request: Request, code: str) -> tuple[ClaimCode, Merchant]:
    with Session(request.app.state.engine) as session:
        return service.find_claim(session=session, keyring=request.app.state.keyring, code=code)


@router.post("/{code}", status_code=201, response_model=ClaimResult, responses=_RESPONSES)
async def claim(code: str, body: ClaimIn, request: Request) -> JSONResponse:
    """Add the code's stamps to this card, once. 410 when the code is used or expired."""
    state = request.app.state
    try:
        _token, card_id = find_card(state.keyring, body.token)
    except TokenError:
        raise NotACard("This is not a treu card.", code="not-a-card") from None
    found, merchant = await run_in_threadpool(_find, request, code)
    assert merchant.id is not None
    command = Command(
        op="claim",
        merchant_id=merchant.id,
        device_id=found.device_id,
        now=state.clock(),
        holder=holder_for(state.keyring, card_id, merchant.id),
        card_ref=card_ref(state.keyring, card_id),
        program_id=found.program_id,
        count=found.count,
        claim_hash=found.code_hash,
    )
    try:
        outcome = await state.writer.submit(command)
    except AppError as refusal:
        if refusal.code in ("device-revoked", "unknown-device"):
            # The till that made the code was unpaired since: the code died with it.
            raise service.ClaimGone(
                "This code is no longer valid. Ask at the till for a new one.",
                code="claim-revoked",
            ) from None
        raise
    result = ClaimResult(
        entry_id=outcome.body["entry_id"],
        stamps=outcome.body["stamps"],
        rewards_available=outcome.body["rewards_available"],
        merchant=ClaimMerchant(slug=merchant.slug, name=merchant.name),
        program=ClaimProgram(**outcome.body["program"]),
    )
    return JSONResponse(result.model_dump(), status_code=outcome.status, headers=outcome.headers)
