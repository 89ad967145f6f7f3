"""Customer pages: get a card, the card itself, backup, my data, where it works, claim codes.

The card lives in the phone's browser (localStorage); the server never sets a cookie for it.
Pages render in the visitor's language and work without JavaScript where they can (getting,
restoring and opening a card are plain links and forms); the scripts add the live stamps,
offline use and remembering the card.
"""

from typing import Annotated, Any
from urllib.parse import quote

from babel import Locale
from babel.dates import tokenize_pattern
from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session, col, select
from starlette.background import BackgroundTask

from app.claims import service as claims
from app.db import SessionDep, WriteSessionDep, engine_of, in_write_session
from app.dependencies import ClockDep, now_of
from app.errors import AppError, NotFound
from app.inputs import Line, Text
from app.merchants import branding
from app.merchants.models import Merchant, Program
from app.ratelimit import rate_limited
from app.tokens import service as cards
from app.tokens.cards import load_card, parse_card, scanned_card
from app.tokens.dependencies import KeyringDep, ValidCardInfo, card_view, keyring_of
from app.tokens.exceptions import CardDeleted, NotACard
from app.web import i18n, render

router = APIRouter(include_in_schema=False)


def _programs(session: Session, merchant_ids: list[int]) -> dict[int, list[Program]]:
    query = (
        select(Program)
        .where(col(Program.merchant_id).in_(merchant_ids), col(Program.active).is_(True))
        .order_by(col(Program.id))
    )
    found: dict[int, list[Program]] = {}
    for program in session.exec(query):
        found.setdefault(program.merchant_id, []).append(program)
    return found


def _template(pattern: str) -> str:
    """A Babel pattern as a template for the page's script: a field ("d", "MMM", "HH", "a")
    becomes a placeholder ("{d}"); the characters between stay as they are."""
    return "".join(
        "{" + value[0] * value[1] + "}" if isinstance(value, tuple) else value
        for _, value in tokenize_pattern(pattern)
    )


def date_format(locale_name: str) -> dict[str, Any]:
    """How the page's script writes a day and a time in the visitor's locale, as Babel does:
    "6. Dez. 2026, 22:49" (de-AT), "6 Dec 2026, 22:49" (en-GB), "Dec 6, 2026, 10:49 PM"
    (en-US). Templates of the patterns, the abbreviated month names and the day periods."""
    locale = Locale.parse(locale_name)
    months = locale.months["format"]["abbreviated"]
    periods = locale.day_periods["format"]["abbreviated"]
    joined = str(locale.datetime_formats["medium"])  # "{1}, {0}": the day, then the time
    joined = joined.replace("{1}", "{date}").replace("{0}", "{time}")
    return {
        "pattern": _template(locale.datetime_skeletons["yMMMd"].pattern),
        "time": _template(locale.time_formats["short"].pattern),
        "joined": joined,
        "months": [months[m] for m in range(1, 13)],
        "am": periods["am"],
        "pm": periods["pm"],
    }


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    return render(request, "customer/home.html")


@router.post("/cards/new", dependencies=[Depends(rate_limited("cards"))])
def new_card(
    request: Request, session: WriteSessionDep, keyring: KeyringDep, clock: ClockDep,
    shop: Line = "",
) -> Response:  # fmt: skip
    """One tap, no form: a new card, then its page (which keeps it in this browser). `shop`:
    the slug of the shop page it was made from (its poster), counted for that shop once the
    card's own transaction has committed."""
    now = clock()
    card = cards.create_card(session=session, keyring=keyring, now=now)
    counted = None
    if shop:
        counted = BackgroundTask(
            in_write_session, engine_of(request), cards.count_poster_card, slug=shop, now=now
        )
    # The shop travels in the fragment, which never reaches a server: the card page shows that
    # shop's (empty) card at once, and no record ties the new card to the shop.
    fragment = f"#new&shop={quote(shop, safe='')}" if shop else "#new"
    return RedirectResponse(f"/c/{card.token}{fragment}", status_code=303, background=counted)


@router.get("/card", response_class=HTMLResponse)
def my_card(request: Request) -> Response:
    """The installed app's start page: opens the card this browser holds."""
    return render(request, "customer/open.html")


@router.get("/m/{slug}", response_class=HTMLResponse)
def merchant_page(slug: str, request: Request, session: SessionDep) -> Response:
    """What a shop's counter poster opens: the shop, its program, one tap to a card."""
    merchant = session.exec(select(Merchant).where(Merchant.slug == slug)).first()
    if merchant is None or merchant.id is None:
        raise NotFound("There is no shop at this address.", title="Shop not found")
    programs = _programs(session, [merchant.id]).get(merchant.id, [])
    return render(
        request, "customer/merchant.html", merchant=merchant, programs=programs,
        shop_data=shop_data(merchant, programs), look_url=branding.look_url(merchant),
        logo_url=branding.logo_url(merchant.slug, merchant.logo_version),
    )  # fmt: skip


def _merchant_or_404(session: Session, slug: str) -> Merchant:
    merchant = session.exec(select(Merchant).where(Merchant.slug == slug)).first()
    if merchant is None:
        raise NotFound("There is no shop at this address.", title="Shop not found")
    return merchant


# A versioned address never changes its answer: a browser may keep it for a year.
_KEEP = "public, max-age=31536000, immutable"
_REVALIDATE = "public, max-age=300"


@router.get("/m/{slug}/logo.png")
def merchant_logo(slug: str, session: SessionDep, v: str = "") -> Response:
    """The shop's logo: always a PNG that treu drew itself (app.merchants.branding)."""
    merchant = _merchant_or_404(session, slug)
    png = branding.logo_png(session=session, merchant=merchant)
    if png is None:
        raise NotFound("This shop has no logo.", title="No logo")
    keep = _KEEP if v and v == merchant.logo_version else _REVALIDATE
    headers = {"Cache-Control": keep, "X-Content-Type-Options": "nosniff"}
    return Response(png, media_type="image/png", headers=headers)


@router.get("/m/{slug}/look.css")
def merchant_look(slug: str, session: SessionDep, v: str = "") -> Response:
    """The shop's accent colour as a stylesheet (the pages allow no inline style)."""
    merchant = _merchant_or_404(session, slug)
    if merchant.accent_color is None:
        raise NotFound("This shop uses treu's colours.", title="No colour")
    keep = _KEEP if v and "#" + v == merchant.accent_color else _REVALIDATE
    headers = {"Cache-Control": keep, "X-Content-Type-Options": "nosniff"}
    css = branding.look_css(merchant.accent_color)
    return Response(css, media_type="text/css", headers=headers)


def shop_data(merchant: Merchant, programs: list[Program]) -> dict[str, Any]:
    """What the page shows of a shop anyway, in the card view's shape: a card page opened from
    here draws this shop's empty card from it before the card has a stamp here."""
    return {
        "merchant": {
            "slug": merchant.slug,
            "name": merchant.name,
            "accent_color": merchant.accent_color,
            "logo_url": branding.logo_url(merchant.slug, merchant.logo_version),
        },
        "programs": [
            {"id": p.id, "name": p.name, "stamps_required": p.stamps_required,
             "reward": p.reward_text}
            for p in programs
        ],
    }  # fmt: skip


@router.get("/merchants", response_class=HTMLResponse)
def merchants_page(request: Request, session: SessionDep) -> Response:
    """Every shop where the same card collects stamps."""
    shops = session.exec(select(Merchant).order_by(col(Merchant.city), col(Merchant.name))).all()
    programs = _programs(session, [m.id for m in shops if m.id is not None])
    listed = [(m, programs[m.id]) for m in shops if m.id in programs]
    cities = sorted({m.city for m, _ in listed if m.city})
    return render(request, "customer/merchants.html", shops=listed, cities=cities)


def _card_or_redirect(
    request: Request, session: Session, token: str, suffix: str = ""
) -> ValidCardInfo | Response:
    keyring = keyring_of(request)
    try:
        key = parse_card(keyring, token)
    except NotACard:
        # A card URL typed by hand or mangled by a scanner: find the token in it.
        found = scanned_card(keyring, token, status=404)
        return RedirectResponse(f"/c/{found.token}{suffix}", status_code=308)
    try:
        return ValidCardInfo(key, load_card(session, key))
    except CardDeleted:
        return render(request, "customer/deleted.html", status_code=410, token=key.token)


@router.get("/C/{token}")
def card_page_upper(token: str) -> Response:
    """The card QR says /C/… (upper case fits the QR alphanumeric mode): one canonical URL."""
    return RedirectResponse(f"/c/{token}", status_code=308)


@router.get("/c/{token}", response_class=HTMLResponse)
def card_page(token: str, request: Request, session: SessionDep) -> Response:
    """The card: its QR for the till, stamps per shop, backup. Kept in this browser by card.js."""
    found = _card_or_redirect(request, session, token)
    if isinstance(found, Response):
        return found
    # The card API's own view, so the page and the API can never disagree. It reads and writes
    # on connections of its own: this one goes back first, one request never holds two at once.
    session.close()
    view = card_view(request, found.key)
    return render(
        request,
        "customer/card.html",
        token=found.key.token,
        view=view.model_dump(),
        recovery_code=view.recovery_code,
        as_of=now_of(request).isoformat(),
        date_format=date_format(i18n.choose_locale(request)),
    )


@router.get("/c/{token}/data", response_class=HTMLResponse)
def data_page(token: str, request: Request, session: SessionDep) -> Response:
    """My data: what is stored about the card, export it, delete it."""
    found = _card_or_redirect(request, session, token, "/data")
    if isinstance(found, Response):
        return found
    return render(request, "customer/data.html", token=found.key.token)


@router.get("/restore", response_class=HTMLResponse)
def restore_page(request: Request, next: str = "") -> Response:
    return render(request, "customer/restore.html", next=_local(next), error=None, code="")


def _local(path: str) -> str:
    """Only a claim page of this site may be where a restore continues (no open redirect)."""
    return path if path.startswith("/k/") and "//" not in path and "\\" not in path else ""


@router.post(
    "/restore", response_class=HTMLResponse, dependencies=[Depends(rate_limited("restore"))]
)
def restore(
    request: Request,
    session: SessionDep,
    keyring: KeyringDep,
    recovery_code: Annotated[Text, Form(max_length=100)] = "",
    next: Annotated[Line, Form(max_length=200)] = "",
) -> Response:
    """A card back on a new phone from its recovery code: the same card, the same stamps."""
    try:
        card = cards.restore_card(session=session, keyring=keyring, recovery_code=recovery_code)
    except AppError as refusal:
        return render(
            request, "customer/restore.html", status_code=refusal.status, next=_local(next),
            error=refusal.detail, code=recovery_code,
        )  # fmt: skip
    target = f"/c/{card.token}#restored"
    if _local(next):
        # The claim page picks the restored card up from the fragment and keeps it.
        target = f"{_local(next)}#card={card.token}"
    return RedirectResponse(target, status_code=303)


@router.get("/K/{code}")
def claim_page_upper(code: str) -> Response:
    return RedirectResponse(f"/k/{code}", status_code=308)


@router.get("/k/{code}", response_class=HTMLResponse, dependencies=[Depends(rate_limited("codes"))])
def claim_page(
    code: str, request: Request, session: SessionDep, keyring: KeyringDep, clock: ClockDep
) -> Response:
    """A till's claim QR: adds its stamps to the card in this browser (claim.js does the POST)."""
    claim, merchant = claims.find_claim(session=session, keyring=keyring, code=code)
    program = session.get(Program, claim.program_id)
    status: dict[str, Any] = {
        "used": claim.claimed_at is not None,
        "expired": claim.claimed_at is None and claim.expires_at <= clock(),
    }
    return render(
        request,
        "customer/claim.html",
        code=claims.parse_code(code),
        claim=claim,
        merchant=merchant,
        program=program,
        **status,
    )
