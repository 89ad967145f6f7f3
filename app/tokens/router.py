"""Card routes: create, view, QR, export, delete, restore; the public verify keys."""

from datetime import date
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, Row
from sqlmodel import Session
from starlette.datastructures import State

from app.db import SessionDep, WriteSessionDep, write_engine
from app.errors import problem_responses
from app.tokens import crypto, qr, service
from app.tokens.crypto import Keyring
from app.tokens.dependencies import CardKey, ValidCard, load_card, parse_card
from app.tokens.schemas import (
    CardBalance,
    CardCreated,
    CardView,
    MerchantRef,
    ProgramRef,
    RestoreIn,
)

router = APIRouter(
    prefix="/api/v1/cards", tags=["cards"],
    responses=problem_responses(400, 404, 410, 413, 422, 429),
)  # fmt: skip
keys_router = APIRouter(tags=["keys"])


def _created(request: Request, card: service.NewCard) -> CardCreated:
    base = request.app.state.settings.base_url
    return CardCreated(
        token=card.token,
        card_url=qr.card_url(base, card.token),
        recovery_code=crypto.recovery_code(card.card_id),
    )


@router.post("", status_code=201, response_model=CardCreated)
def create_card(request: Request, session: WriteSessionDep) -> CardCreated:
    """Create an anonymous card. No input: nothing about the customer is asked or kept."""
    state = request.app.state
    card = service.create_card(session=session, keyring=state.keyring, now=state.clock())
    return _created(request, card)


@router.post("/restore", response_model=CardCreated)
def restore_card(body: RestoreIn, request: Request, session: SessionDep) -> CardCreated:
    """Get a card back on a new phone from its recovery code."""
    card = service.restore_card(
        session=session, keyring=request.app.state.keyring, recovery_code=body.recovery_code
    )
    return _created(request, card)


def _read_card(engine: Engine, keyring: Keyring, key: CardKey) -> tuple[Row[Any], list[Row[Any]]]:
    with engine.connect() as conn:
        return service.card_row(conn, key), service.card_shops(conn, keyring, key.card_id)


_WalletUpdate = tuple[bytes, date] | None


def _view(
    state: State, key: CardKey, card: Row[Any], shops: list[Row[Any]]
) -> tuple[CardView, _WalletUpdate]:
    """The view of what was read, and the card row's update if it needs one."""
    today = state.clock().date()
    sealed = service.wallet_update(state.keyring, key, card, {s.merchant_id for s in shops}, today)
    view = CardView(
        cards=[
            CardBalance(
                merchant=MerchantRef(slug=s.slug, name=s.merchant_name),
                program=ProgramRef(
                    id=s.program_id,
                    name=s.program_name,
                    stamps_required=s.stamps_required,
                    reward=s.reward_text,
                ),
                stamps=s.stamps,
                rewards_available=s.stamps // s.stamps_required,
                last_visit_at=s.last_visit_at.isoformat(),
            )
            for s in shops
        ],
        recovery_code=crypto.recovery_code(key.card_id),
        card_url=qr.card_url(state.settings.base_url, key.token),
    )
    return view, None if sealed is None else (sealed, today)


def _remember(state: State, key: CardKey, sealed_wallet: bytes, today: date) -> None:
    """The first look of the day, or at a new shop's stamps: the card row is written."""
    with Session(write_engine(state.engine)) as session:
        service.remember_visits(session=session, key=key, sealed_wallet=sealed_wallet, today=today)
        session.commit()


def card_view(state: State, key: CardKey) -> CardView:
    """The card's view, for a caller on a worker thread (the card page; the API on PostgreSQL)."""
    view, update = _view(state, key, *_read_card(state.engine, state.keyring, key))
    if update is not None:
        _remember(state, key, *update)
    return view


@router.get("/{token}", response_model=CardView)
async def view_card(token: str, request: Request) -> CardView:
    """The card's stamps at every merchant where it has collected any."""
    state = request.app.state
    key = parse_card(state.keyring, token)
    # The open card page asks for this every few seconds. On SQLite it is three indexed reads
    # that never wait for a writer (WAL): done here, sooner than a worker thread would be given
    # the GIL back after each of them (6x the requests/s, bench/). PostgreSQL is a network away.
    if state.loop_engine is None:
        return await run_in_threadpool(card_view, state, key)
    view, update = _view(state, key, *_read_card(state.loop_engine, state.keyring, key))
    if update is not None:
        await run_in_threadpool(_remember, state, key, *update)
    return view


@router.get("/{token}/qr.svg", response_class=Response)
def card_qr(request: Request, card: ValidCard) -> Response:
    """The card QR (it encodes the card URL) as SVG."""
    text = qr.card_qr_text(request.app.state.settings.base_url, card.key.token)
    return Response(
        qr.qr_svg(text),
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=86400"},
    )


@router.get("/{token}/export")
def export_card(request: Request, card: ValidCard, session: SessionDep) -> Response:
    """Everything stored about this card, as a JSON download."""
    data = service.export_card(
        session=session, keyring=request.app.state.keyring, key=card.key, card=card.card
    )
    return JSONResponse(
        data, headers={"Content-Disposition": 'attachment; filename="treu-card.json"'}
    )


@router.delete("/{token}", status_code=204, response_class=Response)
def delete_card(token: str, request: Request, session: WriteSessionDep) -> Response:
    """Delete the card and its balances everywhere; the token is refused from now on."""
    state = request.app.state
    key = parse_card(state.keyring, token)
    load_card(session, key)
    service.delete_card(session=session, keyring=state.keyring, key=key, now=state.clock())
    return Response(status_code=204)


@keys_router.get("/.well-known/treu-keys.json")
def public_keys(request: Request) -> dict[str, object]:
    """The Ed25519 verify keys, so tills and anyone else can check a card offline."""
    return {
        "keys": request.app.state.keyring.public_keys(),
        "token": {
            "encoding": "base32 (RFC 4648, upper case, no padding)",
            "length": crypto.TOKEN_CHARS,
            "layout": "version(1) | kid(4) | card_id(16) | signature(64)",
            "signed_message": "'treu/card-token/v1' 0x00 | kid | card_id",
        },
    }
