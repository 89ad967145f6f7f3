"""Card routes: create, restore, view, QR, export, delete; the public verify keys."""

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from app.config import Settings
from app.db import SessionDep, WriteSessionDep
from app.dependencies import ClockDep, SettingsDep
from app.errors import problem_responses
from app.ratelimit import rate_limited
from app.tokens import crypto, qr, service
from app.tokens.cards import load_card, parse_card
from app.tokens.dependencies import KeyringDep, ValidCard, card_view_on_loop
from app.tokens.schemas import CardCreated, CardView, RestoreIn

router = APIRouter(
    prefix="/api/v1/cards", tags=["cards"],
    responses=problem_responses(400, 404, 410, 413, 422, 429),
)  # fmt: skip
keys_router = APIRouter(tags=["keys"])


def _created(settings: Settings, card: service.NewCard) -> CardCreated:
    return CardCreated(
        token=card.token,
        card_url=qr.card_url(settings.base_url, card.token),
        recovery_code=crypto.recovery_code(card.card_id),
    )


@router.post(
    "", status_code=201, response_model=CardCreated, dependencies=[Depends(rate_limited("cards"))]
)
def create_card(
    session: WriteSessionDep, keyring: KeyringDep, settings: SettingsDep, clock: ClockDep
) -> CardCreated:
    """Create an anonymous card. No input: nothing about the customer is asked or kept."""
    card = service.create_card(session=session, keyring=keyring, now=clock())
    return _created(settings, card)


@router.post(
    "/restore", response_model=CardCreated, dependencies=[Depends(rate_limited("restore"))]
)
def restore_card(
    body: RestoreIn, session: SessionDep, keyring: KeyringDep, settings: SettingsDep
) -> CardCreated:
    """Get a card back on a new phone from its recovery code."""
    card = service.restore_card(session=session, keyring=keyring, recovery_code=body.recovery_code)
    return _created(settings, card)


@router.get("/{token}", response_model=CardView)
async def view_card(token: str, request: Request, keyring: KeyringDep) -> CardView:
    """The card's stamps at every merchant where it has collected any."""
    return await card_view_on_loop(request, parse_card(keyring, token))


@router.get("/{token}/qr.svg", response_class=Response)
def card_qr(card: ValidCard, settings: SettingsDep) -> Response:
    """The card QR (it encodes the card URL) as SVG."""
    text = qr.card_qr_text(settings.base_url, card.key.token)
    return Response(
        qr.qr_svg(text),
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=86400"},
    )


@router.get("/{token}/export")
def export_card(card: ValidCard, session: SessionDep, keyring: KeyringDep) -> Response:
    """Everything stored about this card, as a JSON download."""
    data = service.export_card(session=session, keyring=keyring, key=card.key, card=card.card)
    return JSONResponse(
        data, headers={"Content-Disposition": 'attachment; filename="treu-card.json"'}
    )


@router.delete("/{token}", status_code=204, response_class=Response)
def delete_card(
    token: str, session: WriteSessionDep, keyring: KeyringDep, clock: ClockDep
) -> Response:
    """Delete the card and its balances everywhere; the token is refused from now on."""
    key = parse_card(keyring, token)
    load_card(session, key)
    service.delete_card(session=session, keyring=keyring, key=key, now=clock())
    return Response(status_code=204)


@keys_router.get("/.well-known/treu-keys.json")
def public_keys(keyring: KeyringDep) -> dict[str, object]:
    """The Ed25519 verify keys, so tills and anyone else can check a card offline."""
    return {
        "keys": keyring.public_keys(),
        "token": {
            "encoding": "base32 (RFC 4648, upper case, no padding)",
            "length": crypto.TOKEN_CHARS,
            "layout": "version(1) | kid(4) | card_id(16) | signature(64)",
            "signed_message": "'treu/card-token/v1' 0x00 | kid | card_id",
        },
    }
