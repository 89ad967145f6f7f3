"""Claim codes: the till makes one and reads it back; the card page claims it; the till draws
it as a QR."""

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.claims import service
from app.claims.schemas import (
    ClaimCreate,
    ClaimCreated,
    ClaimIn,
    ClaimProgram,
    ClaimResult,
    ClaimStatus,
)
from app.db import SessionDep, WriteSessionDep, engine_of, in_read_session
from app.dependencies import ClockDep, SettingsDep
from app.errors import AppError, problem_responses
from app.ledger.dependencies import IdempotencyKey, check_idempotency_key, writer_of
from app.merchants.dependencies import CurrentDevice, DeviceCacheDep
from app.merchants.exceptions import DeviceRevoked
from app.ratelimit import rate_limited
from app.tokens import qr
from app.tokens.cards import scanned_card
from app.tokens.dependencies import KeyringDep

router = APIRouter(prefix="/api/v1/claims", tags=["claims"])
till_router = APIRouter(prefix="/api/v1/till", tags=["till"])

_RESPONSES = problem_responses(400, 401, 404, 409, 410, 413, 422, 429)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@router.post("", status_code=201, response_model=ClaimCreated, responses=_RESPONSES)
def create_claim(
    device: CurrentDevice,
    session: WriteSessionDep,
    keyring: KeyringDep,
    settings: SettingsDep,
    clock: ClockDep,
    cache: DeviceCacheDep,
    body: ClaimCreate | None = None,
    key: IdempotencyKey = None,
) -> ClaimCreated:
    """Make a single-use code for `count` stamps; the till shows `claim_url` as a QR."""
    check_idempotency_key(key)
    body = body or ClaimCreate()
    try:
        new = service.create_claim(
            session=session, keyring=keyring, merchant_id=device.merchant_id,
            device_id=device.device_id, count=body.count, program_id=body.program_id,
            idempotency_key=key, now=clock(), ttl_seconds=settings.claim_ttl_seconds,
        )  # fmt: skip
    except DeviceRevoked:
        cache.clear()
        raise
    return _created(new, settings.base_url)


def _created(new: service.NewClaim, base_url: str) -> ClaimCreated:
    program = new.program
    return ClaimCreated(
        code=new.code,
        claim_url=f"{base_url}/k/{new.code}",
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
    code: str, device: CurrentDevice, session: SessionDep, keyring: KeyringDep, clock: ClockDep
) -> ClaimStatus:
    """Whether a code of this merchant was claimed (the till polls this to say so)."""
    claim = service.claim_status(
        session=session, keyring=keyring, merchant_id=device.merchant_id, code=code
    )
    return ClaimStatus(
        claimed=claim.claimed_at is not None,
        expired=claim.claimed_at is None and claim.expires_at <= clock(),
        expires_at=_iso(claim.expires_at),
    )


@router.post(
    "/{code}", status_code=201, response_model=ClaimResult, responses=_RESPONSES,
    dependencies=[Depends(rate_limited("codes"))],
)  # fmt: skip
async def claim(
    code: str, body: ClaimIn, request: Request, keyring: KeyringDep, clock: ClockDep
) -> JSONResponse:
    """Add the code's stamps to this card, once. 410 when the code is used or expired."""
    card = scanned_card(keyring, body.token)
    pending = await run_in_threadpool(
        in_read_session, engine_of(request), service.prepare_claim,
        keyring=keyring, code=code, card=card, now=clock(),
    )  # fmt: skip
    outcome = await service.claim(writer=writer_of(request), pending=pending)
    result = service.claim_result(outcome, pending.merchant)
    return JSONResponse(result.model_dump(), status_code=outcome.status, headers=outcome.headers)


@till_router.get(
    "/qr.svg", response_class=Response, responses=problem_responses(400, 401, 404, 410, 413, 422)
)
def till_qr(
    device: CurrentDevice, settings: SettingsDep, text: Annotated[str, Query(max_length=300)]
) -> Response:
    """A claim code's URL as a QR (SVG), for a customer's phone camera.

    Only claim URLs of this instance: a device cannot make treu draw arbitrary QR codes.
    """
    prefix = f"{settings.base_url}/k/"
    if not text.startswith(prefix) or not re.fullmatch(r"[A-Za-z0-9_-]{4,64}", text[len(prefix) :]):
        raise AppError(
            "Only claim-code URLs of this treu are drawn.", status=422, code="not-a-claim-url"
        )
    return Response(
        qr.qr_svg(text, border=4), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )
