"""The till: a paired cashier device scans cards and stamps, redeems, undoes.

Pages: /till (the till itself, or how to pair when this browser is not a till yet) and
/till/pair/{code} (claims a pairing code). Which state a browser is in is known only to the
browser (the device secret lives in its localStorage), so the pages are the same for everyone
and the service worker can keep them for offline use.

The till's small JSON API (/api/v1/till/...) complements the ledger routes it writes through.
"""

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from app.db import SessionDep, WriteSessionDep
from app.errors import AppError, NotFound, Unauthorized, problem_responses
from app.ledger.models import Balance
from app.merchants.dependencies import CurrentDevice, DeviceIdentity
from app.merchants.models import Device, Merchant, Program
from app.merchants.pairing import normalize_code, redeem_pairing_code
from app.merchants.service import hash_device_secret
from app.tokens import qr
from app.tokens.crypto import TokenError, card_ref, find_card, holder_for
from app.tokens.dependencies import CardKey, load_card
from app.web import i18n, render
from app.web.i18n import gettext as _

# One router (already included by app.main) for both: the pages stay out of the OpenAPI
# schema route by route, the JSON API is documented under "till".
router = APIRouter()
API = "/api/v1/till"

_RESPONSES = problem_responses(400, 401, 404, 410, 413, 422)


# ---------------------------------------------------------------- pages


def _messages(request: Request) -> dict[str, str]:
    """Every text the till's script shows, in the page's language.

    Keys are problem codes (the API's refusals, reworded for a cashier) or UI names. Numbers
    from the API's English `detail` fill the {0}, {1} placeholders in order.
    """
    i18n.activate(i18n.choose_language(request))
    return {
        # refusals by problem code
        "cooldown": _("Already stamped {0} seconds ago. Try again in {1} seconds."),
        "daily-cap": _("This card already got the daily maximum of {0} stamps here today."),
        "no-reward-due": _("No reward is due yet: the card has {0} of {1} stamps."),
        "not-a-card": _("Not a treu card. Scan it again."),
        "unknown-card": _("This card is not known here."),
        "card-deleted": _("This card was deleted by its owner."),
        "program-paused": _("This stamp program is paused; the shop owner can resume it."),
        "too-many-stamps": _("At most {0} stamps per scan in this program."),
        "unknown-program": _("This shop has no such stamp program."),
        "undo-window": _("Too late to undo: entries can be undone within {0} minutes."),
        "voided": _("This was already undone."),
        "void-would-go-negative": _(
            "These stamps were already redeemed; undo the redemption first."
        ),
        "unknown-entry": _("There is nothing to undo."),
        "in-flight": _("Still working on it, one moment."),
        "device-revoked": _(
            "This till was switched off by the shop owner. Pair it again to keep using it."
        ),
        "unknown-device": _("This till is not paired any more. Pair it again."),
        "pairing-unknown": _(
            "This pairing code is not known. Check it, or make a new one in the shop's settings."
        ),
        "pairing-used": _(
            "This pairing code was already used. Make a new one in the shop's settings."
        ),
        "pairing-expired": _(
            "This pairing code has expired (they are valid for 10 minutes). Make a new one."
        ),
        "claim-expired": _("The code expired before it was scanned. Make a new one."),
        "server": _("The server did not answer properly. Try again."),
        # the till's own words
        "stamps_of": _("{0} of {1} stamps"),
        "stamped": _("+{0} stamp, now {1} of {2}"),
        "stamped_many": _("+{0} stamps, now {1} of {2}"),
        "redeemed": _("Redeemed: {0}. {1} stamps left."),
        "undone": _("Undone. The card has {0} of {1} stamps."),
        "undone_queued": _("Undone. The offline stamp will not be sent."),
        "queued": _("Saved on this till: +{0}. It is sent when the network is back."),
        "reward_due": _("Reward due: {0}"),
        "rewards_due": _("{0} rewards due: {1}"),
        "to_go": _("{0} more for {1}"),
        "redeem": _("Redeem: {0}"),
        "confirm_redeem": _("Give {0}?"),
        "confirm_redeem_detail": _("This uses {0} stamps of the card."),
        "undo": _("Undo"),
        "undo_what_stamp": _("Undo +{0}"),
        "undo_what_redeem": _("Undo redemption"),
        "previous_card": _("previous card"),
        "ago": _("{0} ago"),
        "card_ok": _("Genuine card ✓"),
        "online": _("Online"),
        "offline": _("Offline"),
        "waiting": _("{0} waiting to be sent"),
        "sending": _("Sending…"),
        "sent": _("{0} offline stamps sent."),
        "sent_one": _("1 offline stamp sent."),
        "refused_sync": _("An offline stamp was refused: {0}"),
        "lost": _("Stamps not sent, because the till was switched off first: {0}"),
        "offline_card": _(
            "Offline: the card is genuine; stamps are sent when the network is back. "
            "Redeeming needs the network."
        ),
        "offline_balance": _("Offline: last known {0} of {1} stamps."),
        "offline_redeem": _("Redeeming needs the network. The card's stamps are safe."),
        "offline_undo": _("Undo needs the network for stamps that were already sent."),
        "offline_claim": _("Codes for a phone need the network."),
        "camera_starting": _("Starting the camera…"),
        "camera_on": _("Hold the card's QR code in front of the camera."),
        "camera_denied": _(
            "The camera is blocked for this page. Allow it in the browser's site settings, or "
            "use a handheld scanner or the field below."
        ),
        "camera_missing": _("No camera found. Use a handheld scanner or the field below."),
        "camera_insecure": _(
            "The camera needs a secure connection (https). Use a handheld scanner or the field "
            "below."
        ),
        "camera_failed": _(
            "The camera could not be started. Use a handheld scanner or the field below."
        ),
        "camera_off": _("Camera off. Handheld scanners and the field below still work."),
        "camera_busy": _("The camera is used by another app or tab. Close it and try again."),
        "claim_expires": _("Valid for {0}"),
        "claim_claimed": _("Claimed ✓ +{0} on the customer's card"),
        "claim_scan": _("Customer: scan this with the phone camera"),
        "claim_for": _("{0} stamps for {1}"),
        "claim_for_one": _("1 stamp for {0}"),
        "pairing": _("Pairing this browser…"),
        "paired": _("Paired as {0} at {1}."),
        "code_short": _("A pairing code has 12 letters and digits."),
        "pair_scan": _("Hold the pairing QR code from the shop's settings in front of the camera."),
    }


@router.get("/till", response_class=HTMLResponse, include_in_schema=False)
def till_page(request: Request) -> HTMLResponse:
    """The till, or how to pair (decided in the browser, which alone holds the secret)."""
    return render(request, "till/till.html", messages=_messages(request))


@router.get("/till/pair", response_model=None, include_in_schema=False)
def pair_form(request: Request, code: str = "") -> Response:
    """The typed-code form on an unpaired till lands here when scripts are off."""
    cleaned = normalize_code(code)
    if re.fullmatch(r"[A-Z2-7]{12}", cleaned):
        return RedirectResponse(f"/till/pair/{cleaned}", status_code=303)
    return RedirectResponse("/till", status_code=303)


@router.get("/till/pair/{code}", response_class=HTMLResponse, include_in_schema=False)
def pair_page(code: str, request: Request) -> HTMLResponse:
    """Opened on the new till (from the owner's QR): the script redeems the code once."""
    return render(
        request, "till/pair.html", code=normalize_code(code)[:64], messages=_messages(request)
    )


# ---------------------------------------------------------------- API


class PairIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=64)
    label: str = Field(default="", max_length=80)


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


class TillProgram(BaseModel):
    id: int
    name: str
    stamps_required: int
    reward: str
    max_stamps_per_scan: int
    cooldown_seconds: int
    active: bool


class TillOut(BaseModel):
    merchant: MerchantOut
    device: DeviceOut
    programs: list[TillProgram]
    undo_window_seconds: int
    claim_url_prefix: str


class CardBalanceOut(BaseModel):
    program_id: int
    stamps: int
    rewards_available: int
    # Seconds until this card may be stamped again in this program (0: now).
    cooldown_remaining: int
    last_stamp_at: datetime | None


class TillCardOut(BaseModel):
    token: str
    balances: list[CardBalanceOut]


def _program_out(p: Program) -> TillProgram:
    return TillProgram(
        id=p.id or 0, name=p.name, stamps_required=p.stamps_required, reward=p.reward_text,
        max_stamps_per_scan=p.max_stamps_per_scan, cooldown_seconds=p.cooldown_seconds,
        active=p.active,
    )  # fmt: skip


def _device_row(request: Request, session: Session, identity: DeviceIdentity) -> Device:
    """The device as it is now: reads notice a revocation at once, like writes do."""
    device = session.get(Device, identity.device_id)
    if device is None or device.revoked_at is not None:
        # Forget the cached identity so the ledger routes refuse this secret too.
        cache: dict[str, DeviceIdentity] = request.app.state.device_cache
        secret = request.headers.get("authorization", "").partition(" ")[2].strip()
        cache.pop(hash_device_secret(secret), None)
        if device is None:
            raise Unauthorized("This device is not paired with treu.", code="unknown-device")
        raise Unauthorized(
            "This device was revoked by the shop owner. Pair it again to keep using it.",
            title="Device revoked",
            code="device-revoked",
        )
    return device


def _programs(session: Session, merchant_id: int) -> list[Program]:
    query = (
        select(Program)
        .where(Program.merchant_id == merchant_id)
        .order_by(col(Program.active).desc(), col(Program.id))
    )
    return list(session.exec(query).all())


@router.post(
    f"{API}/pair", tags=["till"], status_code=201, response_model=PairOut, responses=_RESPONSES
)
def pair(body: PairIn, request: Request, session: WriteSessionDep) -> PairOut:
    """Redeem a one-time pairing code: this browser becomes a cashier device."""
    paired = redeem_pairing_code(
        session=session, code=body.code, now=request.app.state.clock(), label=body.label
    )
    assert paired.device.id is not None
    return PairOut(
        secret=paired.secret,
        device=DeviceOut(id=paired.device.id, label=paired.device.label),
        merchant=MerchantOut(slug=paired.merchant.slug, name=paired.merchant.name),
    )


@router.get(API, tags=["till"], response_model=TillOut, responses=_RESPONSES)
def till_info(request: Request, device: CurrentDevice, session: SessionDep) -> TillOut:
    """What the till shows around a scan: its merchant, its name, the programs, the undo window."""
    row = _device_row(request, session, device)
    merchant = session.get(Merchant, device.merchant_id)
    assert merchant is not None
    settings = request.app.state.settings
    return TillOut(
        merchant=MerchantOut(slug=merchant.slug, name=merchant.name),
        device=DeviceOut(id=device.device_id, label=row.label),
        programs=[_program_out(p) for p in _programs(session, device.merchant_id)],
        undo_window_seconds=settings.undo_window_seconds,
        claim_url_prefix=f"{settings.base_url}/k/",
    )


@router.get(
    f"{API}/cards/{{token}}", tags=["till"], response_model=TillCardOut, responses=_RESPONSES
)
def till_card(
    token: str, request: Request, device: CurrentDevice, session: SessionDep
) -> TillCardOut:
    """A card's stamps at this device's merchant, per program, right after a scan."""
    _device_row(request, session, device)
    state = request.app.state
    try:
        canonical, card_id = find_card(state.keyring, token)
    except TokenError:
        raise NotFound(
            "This is not a treu card.", title="Not a treu card", code="not-a-card"
        ) from None
    load_card(session, CardKey(canonical, card_id, card_ref(state.keyring, card_id)))
    holder = holder_for(state.keyring, card_id, device.merchant_id)
    query = select(Balance).where(
        Balance.merchant_id == device.merchant_id, Balance.holder == holder
    )
    balances = {b.program_id: b for b in session.exec(query).all()}
    now = state.clock()
    out = []
    for program in _programs(session, device.merchant_id):
        assert program.id is not None
        found = balances.get(program.id)
        if not program.active and (found is None or found.stamps == 0):
            continue
        stamps = found.stamps if found else 0
        waited = (now - found.last_stamp_at).total_seconds() if found else None
        out.append(
            CardBalanceOut(
                program_id=program.id,
                stamps=stamps,
                rewards_available=stamps // program.stamps_required,
                cooldown_remaining=_remaining(program.cooldown_seconds, waited),
                last_stamp_at=found.last_stamp_at if found else None,
            )
        )
    return TillCardOut(token=canonical, balances=out)


def _remaining(cooldown: int, waited: float | None) -> int:
    if waited is None:
        return 0
    return max(0, int(cooldown - waited))


@router.get(f"{API}/qr.svg", tags=["till"], response_class=Response, responses=_RESPONSES)
def till_qr(
    request: Request,
    device: CurrentDevice,
    text: Annotated[str, Query(max_length=300)],
) -> Response:
    """A claim code's URL as a QR (SVG), for a customer's phone camera.

    Only claim URLs of this instance: a device cannot make treu draw arbitrary QR codes.
    """
    prefix = f"{request.app.state.settings.base_url}/k/"
    if not text.startswith(prefix) or not re.fullmatch(r"[A-Za-z0-9_-]{4,64}", text[len(prefix) :]):
        raise AppError(
            "Only claim-code URLs of this treu are drawn.", status=422, code="not-a-claim-url"
        )
    return Response(
        qr.qr_svg(text, border=4), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )
