"""Device routes: stamp, redeem, void. Each write is queued to the ledger writer."""

import json
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import State
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import AppError, Conflict, problem_responses
from app.ledger.schemas import EntryOut, RedemptionIn, StampIn
from app.ledger.service import Command, Operation, Outcome
from app.merchants.dependencies import CurrentDevice, DeviceIdentity, device_for
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


async def _submit(state: State, command: Command) -> Outcome:
    """Queue a command; its outcome once it has committed. A key still being processed is a 409."""
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
        outcome: Outcome = await state.writer.submit(command)
    except AppError as refusal:
        if refusal.code == "device-revoked":
            state.device_cache.clear()
        raise
    finally:
        if marker is not None:
            in_flight.discard(marker)
    assert outcome.content is not None  # Batch.run serialises every outcome it answers
    return outcome


def _response(outcome: Outcome) -> Response:
    return Response(outcome.content, outcome.status, outcome.headers, media_type="application/json")


def _command(
    state: State,
    device: DeviceIdentity,
    op: Operation,
    key: str | None,
    *,
    token: str | None = None,
    **fields: object,
) -> Command:
    _check_key(key)
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


def _parse(model: type[M], raw: bytes) -> M:
    """The JSON body, validated in one pass by pydantic-core; errors as FastAPI reports them."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


# The stamp is the hot path: DirectStamp below serves it straight from the ASGI scope, without
# FastAPI's per-request dependency solving, request and response objects (see bench/). This
# route documents it in OpenAPI and serves what DirectStamp does not take; both run _stamp, so
# the contract, the checks and their order (401 before the body is read, then 422) are the same.
@router.post(
    "/stamps", status_code=201, response_model=EntryOut, responses=_RESPONSES,
    openapi_extra=_documented(StampIn),
)  # fmt: skip
async def stamp(request: Request) -> Response:
    """Add stamps to a card at this device's merchant. `token` may be the card URL."""
    headers = request.headers
    outcome = await _stamp(
        request.app.state, headers.get("authorization", ""), headers.get("idempotency-key"),
        request.body,
    )  # fmt: skip
    return _response(outcome)


async def _stamp(
    state: State, authorization: str, key: str | None, body: Callable[[], Awaitable[bytes]]
) -> Outcome:
    device = await device_for(state, authorization)
    stamp_in = _parse(StampIn, await body())
    command = _command(
        state, device, "stamp", key, token=stamp_in.token, count=stamp_in.count,
        program_id=stamp_in.program_id,
    )  # fmt: skip
    return await _submit(state, command)


@router.post("/redemptions", status_code=201, response_model=EntryOut, responses=_RESPONSES)
async def redeem(
    body: RedemptionIn, request: Request, device: CurrentDevice, key: IdempotencyKey = None
) -> Response:
    """Redeem one reward; 409 when none is due. Concurrent redemptions never overdraw."""
    state = request.app.state
    command = _command(state, device, "redeem", key, token=body.token, program_id=body.program_id)
    return _response(await _submit(state, command))


@router.post(
    "/entries/{entry_id}/void", status_code=201, response_model=EntryOut, responses=_RESPONSES
)
async def void(
    entry_id: str, request: Request, device: CurrentDevice, key: IdempotencyKey = None
) -> Response:
    """Undo a stamp or redemption of this merchant within the undo window (a new entry)."""
    if not re.fullmatch(r"[0-9a-f]{32}", entry_id):
        raise AppError("No such entry.", status=404, title="Not found", code="unknown-entry")
    state = request.app.state
    return _response(await _submit(state, _command(state, device, "void", key, entry_id=entry_id)))


class DirectStamp:
    """POST /api/v1/stamps from the middleware stack straight to `_stamp()` above.

    The stamp is the one request a busy counter makes again and again. FastAPI's way to its
    handler (matching the path against every route, the exception middleware, the exit stack,
    the request wrapper and the response object) costs more per stamp than the signature check
    (see bench/). This reads the two headers and the body from the ASGI messages, runs the same
    _stamp, and sends the answer as Starlette's Response would (the same headers in the same
    order); refusals go to the app's own exception handlers, so every answer is the same to the
    byte. What it does not take (another method, a prefix) goes on to the FastAPI route.
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
        authorization, key = "", None
        for name, value in scope["headers"]:  # ASGI header names are lower case
            if name == b"authorization" and not authorization:
                authorization = value.decode("latin-1")
            elif name == b"idempotency-key" and key is None:
                key = value.decode("latin-1")

        async def body() -> bytes:
            chunks = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    return b"".join(chunks)

        try:
            outcome = await _stamp(scope["app"].state, authorization, key, body)
        except Exception as exc:
            handlers = scope["app"].exception_handlers
            handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
            if handler is None:
                raise
            request = Request(scope, receive)
            await (await handler(request, exc))(scope, receive, send)
            return
        content = outcome.content or b""
        headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in outcome.headers.items()
        ]
        headers += [(b"content-length", str(len(content)).encode()), _JSON_TYPE]
        await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


_JSON_TYPE = (b"content-type", b"application/json")
