"""The merchant area: login, program, devices, KPIs, exports, printables.

Every page takes the merchant from the owner's session (`CurrentMerchant`), never from the URL,
so an owner can only ever reach their own merchant; ids in URLs (devices, programs) are looked
up within that merchant and answer 404 otherwise.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.db import SessionDep, get_write_session
from app.merchants import auth, service
from app.merchants.models import Owner
from app.web import render
from app.web.i18n import gettext as _
from app.web.i18n import ngettext

router = APIRouter(include_in_schema=False)

# Commits before the response is sent (FastAPI's default would commit after it), so the page
# that follows a redirect always sees the change, and a failed commit is an error page.
WriteSession = Annotated[Session, Depends(get_write_session, scope="function")]
FormText = Annotated[str, Form()]
LoginCsrf = Annotated[bool, Depends(auth.login_csrf_ok)]


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


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
    response = render(
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
def login_page(request: Request, next: str = "", bye: str = "") -> HTMLResponse:
    message = _("You are logged out.") if bye else None
    return _login_form(request, message=message, message_kind="ok", next_path=next)


@router.post("/merchant/login")
def login(
    request: Request,
    read: SessionDep,
    write: WriteSession,
    csrf_ok: LoginCsrf,
    email: FormText = "",
    password: FormText = "",
    next: FormText = "",
) -> Response:
    now = auth.now_of(request)
    if not csrf_ok:
        message = _("This page had expired. Please log in again.")
        return _login_form(request, status=403, message=message, email=email, next_path=next)
    email_key = auth.email_hash(request, email)
    wait = auth.wait_seconds(session=read, email_key=email_key, now=now)
    if wait:
        # Refused without looking at the password: guessing during the wait learns nothing.
        return _login_form(
            request, status=429, message=_wait_text(wait), email=email, next_path=next,
            headers={"Retry-After": str(wait)},
        )  # fmt: skip
    owner = auth.find_owner(session=read, email=email) if len(email) <= 254 else None
    password_ok = auth.check_password(owner, password[:1000])
    if owner is None or not password_ok:
        delay = auth.record_failure(session=write, email_key=email_key, now=now)
        message = _("The e-mail address or the password is wrong.")
        if delay:
            message += " " + _wait_text(delay)
        return _login_form(request, status=401, message=message, email=email, next_path=next)
    auth.forget_failures(session=write, email_key=email_key)
    cookie_value = auth.start_session(session=write, request=request, owner=owner, now=now)
    response = see_other(auth.safe_next(next))
    auth.set_session_cookie(request, response, cookie_value)
    return response


@router.post("/merchant/logout")
def logout(
    request: Request, login: auth.CurrentLogin, _csrf: auth.CsrfChecked, write: WriteSession
) -> RedirectResponse:
    auth.end_session(session=write, session_hash=login.session_hash)
    response = see_other(f"{auth.LOGIN_PATH}?bye=1")
    auth.clear_session_cookie(request, response)
    return response


# --- account ----------------------------------------------------------------------------------


def _account_page(
    request: Request, login: auth.OwnerLogin, *, status: int = 200, **context: object
) -> HTMLResponse:
    return render(
        request, "merchant/account.html", status_code=status, owner=login.owner,
        merchant=login.merchant, **context,
    )  # fmt: skip


@router.get("/merchant/account")
def account_page(request: Request, login: auth.CurrentLogin, done: str = "") -> HTMLResponse:
    notices = {
        "password": _("Your password was changed. Other browsers were logged out."),
        "others": _("Every other session was ended."),
    }
    return _account_page(request, login, notice=notices.get(done))


@router.post("/merchant/account/password")
def change_password(
    request: Request,
    login: auth.CurrentLogin,
    _csrf: auth.CsrfChecked,
    write: WriteSession,
    current: FormText = "",
    new: FormText = "",
    repeat: FormText = "",
) -> Response:
    now = auth.now_of(request)
    email_key = auth.email_hash(request, login.owner.email)
    # The current password is guessed no faster here than on the login page.
    wait = auth.wait_seconds(session=write, email_key=email_key, now=now)
    if wait:
        return _account_page(request, login, status=429, password_error=_wait_text(wait))
    if not auth.check_password(login.owner, current[:1000]):
        delay = auth.record_failure(session=write, email_key=email_key, now=now)
        error = _("The current password is wrong.")
        if delay:
            error += " " + _wait_text(delay)
        return _account_page(request, login, status=400, password_error=error)
    if new != repeat:
        error = _("The two new passwords differ. Type the same one twice.")
        return _account_page(request, login, status=400, password_error=error)
    if len(new) < service.MIN_PASSWORD_LENGTH or len(new) > 200:
        error = _("A password needs at least 10 and at most 200 characters.")
        return _account_page(request, login, status=400, password_error=error)
    owner = write.get(Owner, login.owner.id)
    assert owner is not None
    service.set_owner_password(session=write, owner=owner, password=new)
    auth.forget_failures(session=write, email_key=email_key)
    auth.end_other_sessions(session=write, owner_id=owner.id or 0, keep=login.session_hash)
    return see_other("/merchant/account?done=password")


@router.post("/merchant/account/logout-others")
def logout_others(
    login: auth.CurrentLogin, _csrf: auth.CsrfChecked, write: WriteSession
) -> RedirectResponse:
    owner_id = login.owner.id or 0
    auth.end_other_sessions(session=write, owner_id=owner_id, keep=login.session_hash)
    return see_other("/merchant/account?done=others")
