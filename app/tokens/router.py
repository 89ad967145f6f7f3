"""Card routes: create, view, QR, export, delete, restore; the public verify keys."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlmodel import Session

from app.db import SessionDep, WriteSessionDep, write_engine
from app.tokens import crypto, qr, service
from app.tokens.dependencies import ValidCard, load_card, parse_card
from app.tokens.schemas import (
    CardBalance,
    CardCreated,
    CardView,
    MerchantRef,
    ProgramRef,
    RestoreIn,
)

router = APIRouter(prefix="/api/v1/cards", tags=["cards"])
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


def _remember(request: Request, card: ValidCard, merchant_ids: set[int]) -> None:
    with Session(write_engine(request.app.state.engine)) as session:
        changed = service.remember_visits(
            session=session,
            keyring=request.app.state.keyring,
            key=card.key,
            card=card.card,
            merchant_ids=merchant_ids,
            now=request.app.state.clock(),
        )
        if changed:
            session.commit()


@router.get("/{token}", response_model=CardView)
def view_card(request: Request, card: ValidCard, session: SessionDep) -> CardView:
    """The card's stamps at every merchant where it has collected any."""
    keyring = request.app.state.keyring
    rows = service.card_balances(session=session, keyring=keyring, key=card.key)
    # Give the read connection back before writing: one request never holds two at once.
    session.close()
    _remember(request, card, {b.merchant_id for b, _, _ in rows})
    base = request.app.state.settings.base_url
    return CardView(
        cards=[
            CardBalance(
                merchant=MerchantRef(slug=m.slug, name=m.name),
                program=ProgramRef(
                    id=p.id or 0,
                    name=p.name,
                    stamps_required=p.stamps_required,
                    reward=p.reward_text,
                ),
                stamps=b.stamps,
                rewards_available=b.stamps // p.stamps_required,
                last_visit_at=b.last_visit_at.isoformat(),
            )
            for b, p, m in rows
        ],
        recovery_code=crypto.recovery_code(card.key.card_id),
        card_url=qr.card_url(base, card.key.token),
    )


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
