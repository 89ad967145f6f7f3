"""The merchant area: login, account, devices, exports, printables (programs, regulars and
promotions: app.web.merchant_loyalty; the dashboard: app.web.merchant_dashboard).

Every page takes the merchant from the owner's session (`CurrentMerchant`, in a form post
`OwnerForm`), never from the URL, so an owner can only ever reach their own merchant; ids in
URLs (devices, feedback) are looked up within that merchant and answer 404 otherwise.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Annotated, Any

from babel.dates import format_date, format_time, format_timedelta
from babel.numbers import format_decimal
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from sqlmodel import Session, col, select

from app.analytics.service import daily_rows
from app.db import SessionDep, WriteSessionDep
from app.dependencies import now_of, settings_of
from app.errors import NotFound
from app.inputs import FIRST_DAY, LAST_DAY, Id, Text
from app.merchants import auth, branding, exports, service
from app.merchants.models import Merchant, PairingCode, merchant_zone
from app.merchants.pairing import create_pairing_code, display_code, hash_code
from app.tokens import qr
from app.tokens.dependencies import keyring_of
from app.web import i18n, printing, render
from app.web.i18n import gettext as _
from app.web.i18n import ngettext


async def visitors_language(request: Request) -> None:
    """Words a route makes before render() (a refusal, a notice) in the visitor's language too.
    A coroutine: it sets the language where the route, also one run in a thread, will see it."""
    i18n.activate(i18n.choose_language(request))


router = APIRouter(include_in_schema=False, dependencies=[Depends(visitors_language)])

FormText = Annotated[Text, Form()]
LoginCsrf = Annotated[bool, Depends(auth.login_csrf_ok)]


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A merchant-area page. Never stored by a browser or proxy: it holds the shop's data and
    a CSRF token, and after logout Back must not bring it up again from a cache. Its notice
    says a refusal (4xx) in the colour of one, unless the page says otherwise."""
    context.setdefault("notice_kind", "bad" if status_code >= 400 else "ok")
    response = render(request, template, status_code=status_code, **context)
    response.headers["Cache-Control"] = "no-store"
    return response


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@dataclass
class OwnerPost:
    """What every form post in the merchant area starts from, its CSRF token checked: the
    request, the owner's merchant, the request's read session and the write session that the
    change commits in."""

    request: Request
    merchant: Merchant
    read: Session
    write: Session

    @cached_property
    def mine(self) -> Merchant:
        """The owner's merchant, loaded in the write session."""
        mine = self.write.get(Merchant, self.merchant.id)
        assert mine is not None
        return mine

    @property
    def now(self) -> datetime:
        return now_of(self.request)

    @property
    def page_parts(self) -> tuple[Request, Session, Merchant]:
        """The request, read session and merchant that a page answering the post is built from,
        like the page the form was on."""
        return self.request, self.read, self.merchant


def owner_post(
    request: Request,
    merchant: auth.CurrentMerchant,
    _csrf: auth.CsrfChecked,
    read: SessionDep,
    write: WriteSessionDep,
) -> OwnerPost:
    return OwnerPost(request, merchant, read, write)


OwnerForm = Annotated[OwnerPost, Depends(owner_post)]


# --- login ------------------------------------------------------------------------------------


def _wait_text(seconds: int) -> str:
    if seconds < 90:
        return ngettext(
            "Too many wrong passwords: try again in %(n)s second.",
            "Too many wrong passwords: try again in %(n)s seconds.",
            seconds,
        ) % {"n": seconds}
    minutes = (seconds + 59) // 60
    return ngettext(
        "Too many wrong passwords: try again in %(n)s minute.",
        "Too many wrong passwords: try again in %(n)s minutes.",
        minutes,
    ) % {"n": minutes}


def _login_form(
    request: Request,
    *,
    status: int = 200,
    message: str | None = None,
    message_kind: str = "bad",
    email: str = "",
    next_path: str = "",
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    fresh = auth.prepare_login_form(request)
    response = page(
        request, "merchant/login.html", status_code=status, csrf=auth.csrf_token(request),
        message=message, message_kind=message_kind, email=email[:254],
        next=auth.safe_next(next_path),
    )  # fmt: skip
    response.headers.update(headers or {})
    # The login page is per browser (its CSRF token): never cached by anyone.
    response.headers["Cache-Control"] = "no-store"
    auth.set_login_cookie(request, response, fresh)
    return response


@router.get("/merchant")
def merchant_home() -> RedirectResponse:
    return see_other(auth.HOME_PATH)


@router.get("/merchant/login")
def login_page(request: Request, session: SessionDep, next: str = "", bye: str = "") -> Response:
    # Already logged in (a bookmark, the Back button): straight on.
    cookie_value = request.cookies.get(auth.SESSION_COOKIE)
    if cookie_value and len(cookie_value) <= 100:
        session_hash = auth.session_id_hash(request, cookie_value)
        if auth.find_login(session=session, session_hash=session_hash, now=now_of(request)):
            return see_other(auth.safe_next(next))
    message = _("You are logged out.") if bye else None
    return _login_form(request, message=message, message_kind="ok", next_path=next)


@router.post("/merchant/login")
def login(
    request: Request,
    csrf_ok: LoginCsrf,
    email: FormText = "",
    password: FormText = "",
    next: FormText = "",
) -> Response:
    # No request session: the check gives its connection back before Argon2id runs (auth.py).
    if not csrf_ok:
        message = _("This page had expired. Please log in again.")
        return _login_form(request, status=403, message=message, email=email, next_path=next)
    attempt = auth.attempt_login(
        request=request, email=email, password=password, now=now_of(request)
    )
    if not attempt.cookie:
        return _login_refused(request, attempt, email, next)
    response = see_other(auth.safe_next(next))
    auth.set_session_cookie(request, response, attempt.cookie)
    return response


def _network_wait_text(seconds: int) -> str:
    minutes = (seconds + 59) // 60
    return ngettext(
        "Too many logins from this network: try again in %(n)s minute.",
        "Too many logins from this network: try again in %(n)s minutes.",
        minutes,
    ) % {"n": minutes}


def _refusal(attempt: auth.Attempt) -> tuple[int, str] | None:
    """A password that was not even looked at: the answer's status and words, or None."""
    if attempt.refused == "busy":
        return 503, _("Many logins are being checked at this moment. Please try again shortly.")
    if attempt.refused == "client":
        return 429, _network_wait_text(attempt.wait)
    if attempt.refused == "failures":
        return 429, _wait_text(attempt.wait)
    return None


def _login_refused(
    request: Request, attempt: auth.Attempt, email: str, next_path: str
) -> HTMLResponse:
    refusal = _refusal(attempt)
    if refusal is not None:
        return _login_form(
            request, status=refusal[0], message=refusal[1], email=email,
            next_path=next_path, headers={"Retry-After": str(attempt.wait)},
        )  # fmt: skip
    message = _("The e-mail address or the password is wrong.")
    if attempt.delay:
        message += " " + _wait_text(attempt.delay)
    return _login_form(request, status=401, message=message, email=email, next_path=next_path)


@router.post("/merchant/logout")
def logout(
    request: Request, login: auth.CurrentLogin, _csrf: auth.CsrfChecked, write: WriteSessionDep
) -> RedirectResponse:
    auth.end_session(session=write, session_hash=login.session_hash)
    response = see_other(f"{auth.LOGIN_PATH}?bye=1")
    auth.clear_session_cookie(request, response)
    return response


# --- account ----------------------------------------------------------------------------------


def _account_page(
    request: Request, login: auth.OwnerLogin, *, status: int = 200, **context: object
) -> HTMLResponse:
    return page(
        request, "merchant/account.html", status_code=status, owner=login.owner,
        merchant=login.merchant, **context,
    )  # fmt: skip


@router.get("/merchant/account")
def account_page(request: Request, login: auth.CurrentLogin, done: str = "") -> HTMLResponse:
    notices = {
        "password": _("Your password was changed. Other browsers were logged out."),
        "others": _("Every other session was ended."),
        "logo": _("Your logo was saved."),
        "no-logo": _("Your logo was removed."),
        "accent": _("Your colour was saved."),
    }
    return _account_page(request, login, notice=notices.get(done))


# --- the shop's look: logo and accent colour ---------------------------------------------------

LOGO_UPLOAD_PATH = "/merchant/account/logo"


def _logo_refusal(reason: str) -> str:
    if reason == "too-large":
        return _(
            "This file is larger than 2 MB. Save the logo smaller (it is shown at most 512 "
            "pixels wide) and upload it again."
        )
    if reason == "too-many-pixels":
        return _("This image has too many pixels. Save the logo smaller and upload it again.")
    return _(
        "This file is not a PNG, JPEG or WebP image, or it is damaged. Choose your logo as "
        "one of these and upload it again."
    )


@router.post(LOGO_UPLOAD_PATH)
def upload_logo(
    login: auth.CurrentLogin, post: OwnerForm, logo: Annotated[UploadFile | None, File()] = None
) -> Response:
    if logo is None or not logo.filename:
        error = _("Choose an image file first.")
        return _account_page(post.request, login, status=400, logo_error=error)
    try:
        png = branding.reencode_logo(logo.file.read(branding.MAX_LOGO_BYTES + 1))
    except branding.LogoRefused as refused:
        error = _logo_refusal(refused.reason)
        return _account_page(post.request, login, status=400, logo_error=error)
    branding.set_logo(session=post.write, merchant=post.mine, png=png, now=post.now)
    return see_other("/merchant/account?done=logo#look-h")


@router.post("/merchant/account/logo/remove")
def remove_logo(post: OwnerForm) -> RedirectResponse:
    branding.remove_logo(session=post.write, merchant=post.mine)
    return see_other("/merchant/account?done=no-logo#look-h")


@router.post("/merchant/account/accent")
def set_accent(
    login: auth.CurrentLogin, post: OwnerForm, accent: FormText = "", reset: FormText = ""
) -> Response:
    if reset:
        branding.set_accent(merchant=post.mine, color=None)
        return see_other("/merchant/account?done=accent#look-h")
    verdict = branding.check_accent(accent)
    if verdict.color is None:
        error = _accent_refusal(verdict)
        return _account_page(
            post.request, login, status=400, accent_error=error, accent_tried=accent
        )
    branding.set_accent(merchant=post.mine, color=verdict.color)
    return see_other("/merchant/account?done=accent#look-h")


def _accent_refusal(verdict: branding.AccentVerdict) -> str:
    if verdict.problem == "not-a-colour":
        return _("Give the colour as #rrggbb, for example #1b5e20.")
    return _(
        "This colour is too light to read: white text on it, or it as text on the page, has "
        "a contrast of only %(ratio)s:1, and at least 4.5:1 is needed (WCAG AA). Try a darker "
        "shade, such as %(shade)s."
    ) % {
        "ratio": format_decimal(verdict.contrast, "0.0", locale=i18n.current_locale()),
        "shade": verdict.suggestion,
    }


@router.post("/merchant/account/password")
def change_password(
    request: Request,
    login: auth.CurrentLogin,
    _csrf: auth.CsrfChecked,
    read: SessionDep,
    current: FormText = "",
    new: FormText = "",
    repeat: FormText = "",
) -> Response:
    problem = _new_password_problem(new, repeat, login.owner.email)
    if problem is not None:
        return _account_page(request, login, status=400, password_error=problem)
    read.close()  # the session look-up's connection goes back before Argon2id runs
    attempt = auth.replace_password(
        request=request, login=login, current=current, new=new, now=now_of(request)
    )
    if attempt.owner is None:
        status, error = _refusal(attempt) or (400, _("The current password is wrong."))
        if attempt.delay:
            error += " " + _wait_text(attempt.delay)
        response = _account_page(request, login, status=status, password_error=error)
        if attempt.wait:
            response.headers["Retry-After"] = str(attempt.wait)
        return response
    return see_other("/merchant/account?done=password")


def _new_password_problem(new: str, repeat: str, email: str) -> str | None:
    """What is wrong with a new password, in the owner's words; None when it is good."""
    if new != repeat:
        return _("The two new passwords differ. Type the same one twice.")
    problem = service.password_problem(new, email=email)
    if problem == "guessable":
        return _(
            "This password is too easy to guess: a common password, a part of your e-mail "
            "address, a pattern or a repetition. A few words that do not belong together make "
            "a good one."
        )
    if problem is not None:
        return _("A password needs at least 10 and at most 200 characters.")
    return None


@router.post("/merchant/account/logout-others")
def logout_others(
    login: auth.CurrentLogin, _csrf: auth.CsrfChecked, write: WriteSessionDep
) -> RedirectResponse:
    owner_id = login.owner.id or 0
    auth.end_other_sessions(session=write, owner_id=owner_id, keep=login.session_hash)
    return see_other("/merchant/account?done=others")


# --- devices ----------------------------------------------------------------------------------


def _ago(moment: datetime, now: datetime, language: str) -> str:
    """'3 minutes ago' / 'vor 3 Minuten'; a date once it is more than a week back."""
    if now - moment > timedelta(days=7):
        return format_date(moment, "medium", locale=language)
    if now - moment < timedelta(minutes=1):
        return _("just now")
    return format_timedelta(moment - now, add_direction=True, threshold=1, locale=language)


def _device_rows(request: Request, session: Session, merchant: Merchant) -> list[dict[str, object]]:
    now, language = now_of(request), i18n.choose_language(request)
    devices = service.list_devices(session=session, merchant=merchant)
    # Active devices first, most recently used on top; revoked ones at the end.
    devices.sort(
        key=lambda d: (d.revoked_at is not None, -(d.last_seen_at or d.created_at).timestamp())
    )
    return [
        {
            "id": d.id, "label": d.label,
            "last_seen": _ago(d.last_seen_at, now, language) if d.last_seen_at else None,
            "created": _ago(d.created_at, now, language),
            "revoked": _ago(d.revoked_at, now, language) if d.revoked_at else None,
        }
        for d in devices
    ]  # fmt: skip


def _devices_page(
    request: Request, session: Session, merchant: Merchant, **context: Any
) -> HTMLResponse:
    return page(
        request, "merchant/devices.html", merchant=merchant,
        devices=_device_rows(request, session, merchant), **context,
    )  # fmt: skip


@router.get("/merchant/devices")
def devices_page(
    request: Request, merchant: auth.CurrentMerchant, session: SessionDep, done: str = ""
) -> HTMLResponse:
    notices = {
        "renamed": _("The device was renamed."),
        "revoked": _("The device was revoked. It can no longer add stamps."),
    }
    return _devices_page(request, session, merchant, notice=notices.get(done))


def _pairing_view(
    request: Request, session: Session, merchant: Merchant, code: str, url: str, expires: datetime
) -> dict[str, object]:
    # The page asks for this code's state by its row id (the code itself stays on the page).
    pairing_id = session.exec(
        select(PairingCode.id).where(PairingCode.code_hash == hash_code(code))
    ).one()
    language = i18n.choose_language(request)
    return {
        "id": pairing_id,
        "qr": printing.inline_svg(qr.qr_svg(url)),
        "code": display_code(code),
        "url": url,
        "expires": format_time(expires, "short", tzinfo=merchant_zone(merchant), locale=language),
    }


@router.post("/merchant/devices/pair")
def pair_device(post: OwnerForm, label: FormText = "") -> HTMLResponse:
    request, merchant = post.request, post.merchant
    code, url, expires_at = create_pairing_code(
        session=post.write, merchant=post.mine, now=post.now,
        base_url=settings_of(request).base_url, label=label.strip()[:80],
    )  # fmt: skip
    pairing = _pairing_view(request, post.write, merchant, code, url, expires_at)
    response = _devices_page(*post.page_parts, pairing=pairing)
    # The code is shown once: no cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/merchant/devices/pairing/{pairing_id}")
def pairing_state(
    request: Request, pairing_id: Id, merchant: auth.CurrentMerchant, session: SessionDep
) -> JSONResponse:
    """Whether the pairing code on the devices page was used yet: the page asks every few
    seconds while it shows the code, and reloads its device list once it was."""
    row = session.exec(
        select(PairingCode).where(
            col(PairingCode.id) == pairing_id, col(PairingCode.merchant_id) == merchant.id
        )
    ).first()
    if row is None:  # another merchant's code is not found either
        raise NotFound("There is no such pairing code.")
    if row.used_at is not None:
        state = "paired"
    else:
        state = "expired" if row.expires_at <= now_of(request) else "waiting"
    return JSONResponse(
        {"state": state, "device_id": row.device_id}, headers={"Cache-Control": "no-store"}
    )


@router.post("/merchant/devices/{device_id}/rename")
def rename_device(device_id: Id, post: OwnerForm, label: FormText = "") -> Response:
    # Another merchant's device is not found, whatever the form says.
    service.get_device(session=post.write, merchant=post.mine, device_id=device_id)
    if not label.strip():
        return _devices_page(*post.page_parts, status_code=422, notice=_("A device needs a name."))
    service.rename_device(session=post.write, merchant=post.mine, device_id=device_id, label=label)
    return see_other(f"/merchant/devices?done=renamed#device-{device_id}")


@router.post("/merchant/devices/{device_id}/revoke")
def revoke_device(device_id: Id, post: OwnerForm) -> RedirectResponse:
    service.revoke_device(session=post.write, merchant=post.mine, device_id=device_id, now=post.now)
    return see_other("/merchant/devices?done=revoked")


# --- exports ----------------------------------------------------------------------------------

EXPORT_DEFAULT_DAYS = 30


def _today(request: Request, merchant: Merchant) -> date:
    return now_of(request).astimezone(merchant_zone(merchant)).date()


def _period(request: Request, merchant: Merchant, start: str, end: str) -> tuple[date, date] | None:
    """The chosen days, or None when they are not two dates in order."""
    try:
        first = date.fromisoformat(start) if start else date(2000, 1, 1)
        last = date.fromisoformat(end) if end else _today(request, merchant)
    except ValueError:
        return None
    return (first, last) if FIRST_DAY <= first <= last <= LAST_DAY else None


def _exports_page(
    request: Request, merchant: Merchant, *, status: int = 200, error: str | None = None
) -> HTMLResponse:
    today = _today(request, merchant)
    return page(
        request, "merchant/exports.html", status_code=status, merchant=merchant,
        start=(today - timedelta(days=EXPORT_DEFAULT_DAYS - 1)).isoformat(),
        end=today.isoformat(), error=error, k=settings_of(request).k_anonymity,
    )  # fmt: skip


@router.get("/merchant/exports")
def exports_page(request: Request, merchant: auth.CurrentMerchant) -> HTMLResponse:
    return _exports_page(request, merchant)


def _csv_response(lines: Iterator[str], filename: str) -> StreamingResponse:
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/merchant/exports/daily.csv", response_model=None)
def export_daily(
    request: Request,
    merchant: auth.CurrentMerchant,
    session: SessionDep,
    start: str = "",
    end: str = "",
) -> Response:
    period = _period(request, merchant, start, end)
    if period is None:
        return _exports_page(
            request,
            merchant,
            status=422,
            error=_("Choose two dates, the first not after the second."),
        )
    rows = daily_rows(session=session, merchant_id=merchant.id or 0, start=period[0], end=period[1])
    name = f"treu-{merchant.slug}-daily-{period[0]}-{period[1]}.csv"
    return _csv_response(exports.daily_csv(rows, settings_of(request).k_anonymity), name)


# --- printables -------------------------------------------------------------------------------

PRINT_COUNTS = (10, 20, 30, 50, 100)


@router.get("/merchant/print")
def print_page(request: Request, merchant: auth.CurrentMerchant) -> HTMLResponse:
    return page(request, "merchant/print.html", merchant=merchant)


@router.get("/merchant/print/poster")
def poster(
    request: Request, merchant: auth.CurrentMerchant, session: SessionDep, size: str = "a4"
) -> HTMLResponse:
    if size not in ("a4", "a5"):
        size = "a4"
    url = printing.merchant_url(settings_of(request).base_url, merchant.slug)
    programs = service.list_programs(session=session, merchant=merchant)
    program = next((p for p in programs if p.active), programs[0] if programs else None)
    return page(
        request, "merchant/poster.html", merchant=merchant, size=size, url=url,
        qr=printing.inline_svg(qr.qr_svg(url)), program=program,
        look_url=branding.look_url(merchant),
        logo_url=branding.logo_url(merchant.slug, merchant.logo_version),
    )  # fmt: skip


@router.post("/merchant/print/cards")
def print_cards(post: OwnerForm, count: FormText = "10") -> HTMLResponse:
    request = post.request
    number = int(count) if count.isdigit() else 0
    if number not in PRINT_COUNTS:
        number = PRINT_COUNTS[0]
    cards = printing.new_printed_cards(
        session=post.write, keyring=keyring_of(request), base_url=settings_of(request).base_url,
        now=post.now, count=number,
    )  # fmt: skip
    response = page(
        request, "merchant/cards.html", merchant=post.merchant, count=number,
        sheets=printing.sheets(cards),
        restore=printing.restore_address(settings_of(request).base_url),
        look_url=branding.look_url(post.merchant),
        logo_src=branding.logo_url(post.merchant.slug, post.merchant.logo_version),
    )  # fmt: skip
    # The tokens are on this page only: no cache may keep them.
    response.headers["Cache-Control"] = "no-store"
    return response
