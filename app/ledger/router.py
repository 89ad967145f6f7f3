"""Device routes: stamp, redeem, void. Each write is queued to the ledger writer."""

import json
import re
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import AppError, Conflict, problem_responses
from app.ledger.schemas import EntryOut, RedemptionIn, StampIn
from app.ledger.service import Command, Operation
from app.merchants.dependencies import CurrentDevice, DeviceIdentity, current_device
from app.tokens.crypto import (
    Keyring,
    TokenError,
    card_ref,
    find_card,
    holder_for,
    request_fingerprint,
)

router = APIRouter(prefix="/api/v1", tags=["ledger"])

_KEY_HELP = (
    "Any unique string (a UUID): a retry with the same key returns the first result; kept at "
    "least 72 hours."
)
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", description=_KEY_HELP)]
_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
# What a request's fingerprint is taken of (json.dumps(..., sort_keys=True), made once).
_CANONICAL = json.JSONEncoder(sort_keys=True)
_RESPONSES = problem_responses(400, 401, 404, 409, 410, 413, 422, 429)


class NotACard(AppError):
    status = 422
    title = "Not a treu card"


def _card(keyring: Keyring, scanned: str) -> tuple[bytes, str]:
    try:
        _token, card_id = find_card(keyring, scanned)
    except TokenError:
        raise NotACard(
            "What was scanned is not a treu card (or it was damaged). Scan it again.",
            code="not-a-card",
        ) from None
    return card_id, card_ref(keyring, card_id)


def _check_key(key: str | None) -> None:
    if key is not None and not _KEY_PATTERN.fullmatch(key):
        raise AppError(
            "An Idempotency-Key is 1 to 255 printable ASCII characters.",
            title="Bad Idempotency-Key",
            code="bad-idempotency-key",
        )


async def _submit(request: Request, command: Command) -> Response:
    """Queue a command; answer once it has committed. A key still being processed is a 409."""
    state = request.app.state
    in_flight: set[tuple[int, str]] = state.in_flight
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
        outcome = await state.writer.submit(command)
    except AppError as refusal:
        if refusal.code == "device-revoked":
            state.device_cache.clear()
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
    _check_key(key)
    state = request.app.state
    holder = ref = None
    if token is not None:
        card_id, ref = _card(state.keyring, token)
        holder = holder_for(state.keyring, card_id, device.merchant_id)
    canonical = _CANONICAL.encode([op, holder, fields]).encode()
    return Command(
        op=op,
        merchant_id=device.merchant_id,
        device_id=device.device_id,
        now=state.clock(),
        holder=holder,
        card_ref=ref,
        idempotency_key=key,
        fingerprint=request_fingerprint(state.keyring, device.merchant_id, canonical),
        undo_window_seconds=state.settings.undo_window_seconds,
        **fields,  # type: ignore[arg-type]
    )


def _documented(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a route that reads its own headers and body (see stamp())."""
    return {
        "parameters": [
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "schema": {"type": "string", "maxLength": 255}, "description": _KEY_HELP},
        ],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": model.model_json_schema()}}},
    }  # fmt: skip


M = TypeVar("M", bound=BaseModel)


async def _body(request: Request, model: type[M]) -> M:
    """The JSON body, validated in one pass by pydantic-core; errors as FastAPI reports them."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


# The stamp is the hot path: it reads its device, header and body itself instead of through
# FastAPI's per-request dependency solving, which costs more than the signature check
# (see bench/). The contract, the checks and their order (401 before 422) are the same.
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
    """Redeem one reward; 409 when none is due. Concurrent redemptions never overdraw."""
    command = _command(request, device, "redeem", key, token=body.token, program_id=body.program_id)
    return await _submit(request, command)


@router.post(
    "/entries/{entry_id}/void", status_code=201, response_model=EntryOut, responses=_RESPONSES
)
async def void(
    entry_id: str, request: Request, device: CurrentDevice, key: IdempotencyKey = None
) -> Response:
    """Undo a stamp or redemption of this merchant within the undo window (a new entry)."""
    if not re.fullmatch(r"[0-9a-f]{32}", entry_id):
        raise AppError("No such entry.", status=404, title="Not found", code="unknown-entry")
    command = _command(request, device, "void", key, entry_id=entry_id)
    return await _submit(request, command)


class DirectStamp:
    """POST /api/v1/stamps from the middleware stack straight to `stamp()` above.

    The stamp is the one request a busy counter makes again and again. FastAPI's way to its
    handler (matching the path against every route, the exception middleware, the exit stack,
    the request wrapper) costs more per stamp than the signature check and the ledger write
    together (see bench/). This runs the same handler; refusals go to the app's own exception
    handlers, so the answers are the same to the byte. The FastAPI route stays: it documents
    the endpoint in OpenAPI and serves whatever this does not take (another method, a prefix).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != "/api/v1/stamps"
            or scope["method"] != "POST"
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await stamp(request)
        except Exception as exc:
            handlers = scope["app"].exception_handlers
            handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)
