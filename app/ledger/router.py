"""Device routes: stamp, redeem, void (each write is queued to the ledger writer), and what a
till reads about a card right after a scan."""

import json
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from app.db import SessionDep
from app.dependencies import ClockDep, clock_of, settings_of
from app.errors import AppError, Conflict, UnsupportedMediaType, is_json, problem_responses
from app.ledger import service
from app.ledger.dependencies import (
    KEY_HELP,
    IdempotencyKey,
    check_idempotency_key,
    in_flight_of,
    writer_of,
)
from app.ledger.schemas import EntryOut, RedemptionIn, StampIn, TillCardOut, TillTierOut
from app.ledger.service import Command, Operation
from app.merchants.dependencies import (
    DEVICE_SECRET,
    CurrentDevice,
    CurrentDeviceRow,
    DeviceIdentity,
    current_device,
    device_cache_of,
)
from app.merchants.exceptions import DeviceRevoked
from app.merchants.service import till_programs
from app.tokens.cards import load_card, scanned_card
from app.tokens.crypto import holder_for, request_fingerprint, shop_code
from app.tokens.dependencies import KeyringDep, keyring_of

router = APIRouter(prefix="/api/v1", tags=["ledger"])

# What a request's fingerprint is taken of (json.dumps(..., sort_keys=True), made once).
_CANONICAL = json.JSONEncoder(sort_keys=True)
_RESPONSES = problem_responses(400, 401, 404, 409, 410, 413, 422, 429)
_SCANNED = "What was scanned is not a treu card (or it was damaged). Scan it again."


async def _submit(request: Request, command: Command) -> Response:
    """Queue a command; answer once it has committed. A key still being processed is a 409."""
    in_flight = in_flight_of(request)
    marker = (command.merchant_id, command.idempotency_key) if command.idempotency_key else None
    if marker is not None:
        if marker in in_flight:
            raise Conflict(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                title="Request in progress",
                code="in-flight",
                headers={"Retry-After": "1"},
            )
        in_flight.add(marker)
    try:
        outcome = await writer_of(request).submit(command)
    except DeviceRevoked:
        device_cache_of(request).clear()
        raise
    finally:
        if marker is not None:
            in_flight.discard(marker)
    assert outcome.content is not None  # Batch.run serialises every outcome it answers
    return Response(outcome.content, outcome.status, outcome.headers, media_type="application/json")


def _command(
    request: Request,
    device: DeviceIdentity,
    op: Operation,
    key: str | None,
    *,
    token: str | None = None,
    **fields: object,
) -> Command:
    check_idempotency_key(key)
    keyring = keyring_of(request)
    holder = ref = None
    if token is not None:
        card = scanned_card(keyring, token, _SCANNED)
        holder, ref = holder_for(keyring, card.card_id, device.merchant_id), card.ref
    canonical = _CANONICAL.encode([op, holder, fields]).encode()
    return Command(
        op=op,
        merchant_id=device.merchant_id,
        device_id=device.device_id,
        now=clock_of(request)(),
        holder=holder,
        card_ref=ref,
        idempotency_key=key,
        fingerprint=request_fingerprint(keyring, device.merchant_id, canonical),
        undo_window_seconds=settings_of(request).undo_window_seconds,
        **fields,  # type: ignore[arg-type]
    )


def _documented(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a route that reads its own device, headers and body (see stamp())."""
    return {
        "security": [{DEVICE_SECRET: []}],
        "parameters": [
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "schema": {"type": "string", "maxLength": 255}, "description": KEY_HELP},
        ],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": model.model_json_schema()}}},
    }  # fmt: skip


M = TypeVar("M", bound=BaseModel)


async def _body(request: Request, model: type[M]) -> M:
    """The JSON body, validated in one pass by pydantic-core; errors as FastAPI reports them
    (a body of another Content-Type is a 415, as app.errors answers FastAPI's routes)."""
    raw = await request.body()
    if raw and not is_json(request.headers.get("content-type")):
        raise UnsupportedMediaType()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


# The stamp is the hot path: it reads its device, header and body itself instead of through
# FastAPI's per-request dependency solving, which costs more than the signature check
# (see bench/), and app.ledger.direct runs it without FastAPI's routing. The contract, the
# checks and their order (401 before 422) are the same.
@router.post(
    "/stamps", status_code=201, response_model=EntryOut, responses=_RESPONSES,
    openapi_extra=_documented(StampIn),
)  # fmt: skip
async def stamp(request: Request) -> Response:
    """Add stamps to a card at this device's merchant. `token` may be the card URL."""
    device = await current_device(request)
    body = await _body(request, StampIn)
    key = request.headers.get("idempotency-key")
    command = _command(
        request, device, "stamp", key, token=body.token, count=body.count,
        program_id=body.program_id,
    )  # fmt: skip
    return await _submit(request, command)


@router.post("/redemptions", status_code=201, response_model=EntryOut, responses=_RESPONSES)
async def redeem(
    body: RedemptionIn, request: Request, device: CurrentDevice, key: IdempotencyKey = None
) -> Response:
    """Redeem one reward (a level with `reward_id`, else the main reward); 409 when none is
    due. Concurrent redemptions never overdraw."""
    # Without a reward level the fields are what they were, and so is a retry's fingerprint.
    level = {} if body.reward_id is None else {"reward_id": body.reward_id}
    command = _command(
        request, device, "redeem", key, token=body.token, program_id=body.program_id, **level
    )
    return await _submit(request, command)


@router.post(
    "/entries/{entry_id}/void", status_code=201, response_model=EntryOut, responses=_RESPONSES
)
async def void(
    entry_id: str, request: Request, device: CurrentDevice, key: IdempotencyKey = None
) -> Response:
    """Undo a stamp or redemption of this merchant within the undo window (a new entry)."""
    if not service.ENTRY_ID.fullmatch(entry_id):
        raise AppError("No such entry.", status=404, title="Not found", code="unknown-entry")
    command = _command(request, device, "void", key, entry_id=entry_id)
    return await _submit(request, command)


@router.get(
    "/till/cards/{token}", tags=["till"], response_model=TillCardOut,
    responses=problem_responses(400, 401, 404, 410, 413, 422),
)  # fmt: skip
def till_card(
    token: str, device: CurrentDeviceRow, session: SessionDep, keyring: KeyringDep, clock: ClockDep
) -> TillCardOut:
    """A card's stamps at this device's merchant, per program, right after a scan."""
    key = scanned_card(keyring, token, status=404)
    load_card(session, key)
    holder = holder_for(keyring, key.card_id, device.merchant_id)
    balances = service.till_card(
        session=session,
        merchant_id=device.merchant_id,
        programs=till_programs(session=session, merchant_id=device.merchant_id),
        holder=holder,
        now=clock(),
    )
    tier = service.tier_at(
        session=session, merchant_id=device.merchant_id, holder=holder, now=clock()
    )
    shown = TillTierOut(name=tier.name, perk=tier.perk_text) if tier is not None else None
    return TillCardOut(
        token=key.token, balances=balances, tier=shown, code=shop_code(keyring, holder)
    )
