"""Owner login for the merchant area: server-side sessions, CSRF tokens, login throttling.

The session cookie holds 256 random bits; the database keeps only a keyed BLAKE2b of it (with
the `session` key), so neither a copy of the table nor a log line can be replayed as a login,
and logout deletes the row, which ends the session everywhere at once. CSRF tokens are
synchroniser tokens derived from the cookie value with the same key: nothing to store, and a
token is only good together with the cookie it was derived from.

A password check reads what it needs, gives the connection back, runs Argon2id (a fifth of a
second, 64 MiB) holding no connection, and writes in a short transaction of its own; at most
`TREU_PASSWORD_CHECKS` run at once. How guessing is throttled: app/merchants/throttle.py.
"""

import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import delete
from sqlmodel import Session, col, select

from app.db import SessionDep, engine_of, in_read_session, in_write_session
from app.dependencies import now_of, settings_of
from app.errors import wants_html
from app.merchants import service
from app.merchants.exceptions import CsrfRefused, LoginRequired
from app.merchants.models import Merchant, Owner, OwnerSession
from app.merchants.service import hash_password, verify_password
from app.merchants.throttle import (
    BUSY_RETRY_SECONDS,
    FailedLogins,
    PasswordChecks,
    free_failures,
    record_failure,
)
from app.ratelimit import TooManyRequests, client_of, limit, rate_limits_of
from app.tokens.crypto import keyed_hash
from app.tokens.dependencies import keyring_of

SESSION_COOKIE = "treu_owner"
# Before login there is no session to bind the login form's CSRF token to; this cookie is it.
LOGIN_COOKIE = "treu_login"
SESSION_LIFETIME = timedelta(days=14)
LOGIN_PATH = "/merchant/login"
HOME_PATH = "/merchant/dashboard"


def _keyed(request: Request, person: bytes, value: str) -> str:
    key = keyring_of(request).session_key
    return keyed_hash(key, person, value.encode(), size=32).hex()


def session_id_hash(request: Request, cookie_value: str) -> str:
    return _keyed(request, b"treu-owner-sess", cookie_value)


def email_hash(request: Request, email: str) -> str:
    return _keyed(request, b"treu-login-mail", normalize_email(email))


def normalize_email(email: str) -> str:
    return email.strip().lower()


def is_secure(request: Request) -> bool:
    """Secure cookies behind HTTPS: the request's scheme, or a public URL that says https."""
    public_url = settings_of(request).public_url
    return request.url.scheme == "https" or public_url.startswith("https://")


# --- CSRF -------------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """The CSRF token for forms on this page: bound to the owner session, or before login to
    the login cookie. Use it in templates as the hidden field `csrf_token`."""
    binding = getattr(request.state, "csrf_binding", None)
    if binding is None:
        binding = request.cookies.get(SESSION_COOKIE) or request.cookies.get(LOGIN_COOKIE)
    if not binding:
        return ""
    return _keyed(request, b"treu-csrf", binding)


def _token_matches(request: Request, binding: str | None, sent: object) -> bool:
    if not binding or not isinstance(sent, str) or not sent:
        return False
    return hmac.compare_digest(_keyed(request, b"treu-csrf", binding), sent)


async def check_csrf(request: Request) -> None:
    """Refuse a form post whose `csrf_token` does not belong to this owner's session."""
    form = await request.form()
    if not _token_matches(request, request.cookies.get(SESSION_COOKIE), form.get("csrf_token")):
        raise CsrfRefused(
            "This form was open too long or did not come from this page. "
            "Go back, reload the page and try again.",
            code="csrf",
        )


async def login_csrf_ok(request: Request) -> bool:
    """Whether the login form's token belongs to this browser's login cookie."""
    form = await request.form()
    return _token_matches(request, request.cookies.get(LOGIN_COOKIE), form.get("csrf_token"))


def prepare_login_form(request: Request) -> str | None:
    """Make sure the browser has a login cookie to bind the login form's token to; returns a
    new cookie value to set on the response, or None when the browser has one already."""
    existing = request.cookies.get(LOGIN_COOKIE)
    if existing:
        request.state.csrf_binding = existing
        return None
    fresh = secrets.token_urlsafe(32)
    request.state.csrf_binding = fresh
    return fresh


def set_login_cookie(request: Request, response: Response, value: str | None) -> None:
    if value is not None:
        response.set_cookie(
            LOGIN_COOKIE, value, max_age=86_400, path="/merchant", httponly=True,
            samesite="lax", secure=is_secure(request),
        )  # fmt: skip


CsrfChecked = Annotated[None, Depends(check_csrf)]


# --- sessions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerLogin:
    owner: Owner
    merchant: Merchant
    session_hash: str


def find_login(*, session: Session, session_hash: str, now: datetime) -> OwnerLogin | None:
    """The owner and merchant of a live session, or None when it is unknown or expired."""
    query = (
        select(OwnerSession, Owner, Merchant)
        .join(Owner, col(Owner.id) == OwnerSession.owner_id)
        .join(Merchant, col(Merchant.id) == Owner.merchant_id)
        .where(OwnerSession.id == session_hash, OwnerSession.expires_at > now)
    )
    row = session.exec(query).first()
    if row is None:
        return None
    owner_session, owner, merchant = row
    # Belt and braces: a session is only ever good for its own owner's merchant.
    if owner_session.merchant_id != merchant.id:
        return None
    return OwnerLogin(owner, merchant, session_hash)


def start_session(*, session: Session, request: Request, owner: Owner, now: datetime) -> str:
    """Create a session for owner; returns the cookie value (shown to the browser only)."""
    assert owner.id is not None
    cookie_value = secrets.token_urlsafe(32)
    session.execute(delete(OwnerSession).where(col(OwnerSession.expires_at) <= now))
    session.add(
        OwnerSession(
            merchant_id=owner.merchant_id,
            id=session_id_hash(request, cookie_value),
            owner_id=owner.id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.flush()
    return cookie_value


def end_session(*, session: Session, session_hash: str) -> None:
    session.execute(delete(OwnerSession).where(col(OwnerSession.id) == session_hash))


def end_other_sessions(*, session: Session, owner_id: int, keep: str | None) -> int:
    """End every session of this owner except `keep` (after a password change, or on request)."""
    query = delete(OwnerSession).where(col(OwnerSession.owner_id) == owner_id)
    if keep is not None:
        query = query.where(col(OwnerSession.id) != keep)
    result = session.execute(query)
    return int(result.rowcount)  # type: ignore[attr-defined]


def set_session_cookie(request: Request, response: Response, cookie_value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, cookie_value, max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/", httponly=True, samesite="lax", secure=is_secure(request),
    )  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE, path="/merchant")


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_secure(request)
    )


def login_required(request: Request) -> LoginRequired:
    if wants_html(request) and request.url.path.startswith("/merchant"):
        target = request.url.path if request.method == "GET" else HOME_PATH
        if request.method == "GET" and request.url.query:
            target += "?" + request.url.query
        location = f"{LOGIN_PATH}?next={quote(target, safe='')}"
        return LoginRequired(
            "Please log in to continue.", status=303, headers={"Location": location}
        )
    return LoginRequired("Log in to the merchant area first.", code="login-required")


def current_login(request: Request, session: SessionDep) -> OwnerLogin:
    """The logged-in owner with their merchant; also remembered on request.state for the
    merchant layout (its name and the logout form's CSRF token)."""
    cached = getattr(request.state, "owner_login", None)
    if isinstance(cached, OwnerLogin):
        return cached
    cookie_value = request.cookies.get(SESSION_COOKIE)
    if not cookie_value or len(cookie_value) > 100:
        raise login_required(request)
    found = find_login(
        session=session, session_hash=session_id_hash(request, cookie_value), now=now_of(request)
    )
    if found is None:
        raise login_required(request)
    request.state.owner_login = found
    request.state.merchant = found.merchant
    request.state.csrf_token = csrf_token(request)
    return found


def current_owner(request: Request, session: SessionDep) -> Owner:
    """The logged-in owner (pages redirect to the login page without one, the API answers 401)."""
    return current_login(request, session).owner


def current_merchant(request: Request, session: SessionDep) -> Merchant:
    """The merchant of the logged-in owner: the only merchant this request may see."""
    return current_login(request, session).merchant


CurrentLogin = Annotated[OwnerLogin, Depends(current_login)]
CurrentOwner = Annotated[Owner, Depends(current_owner)]
CurrentMerchant = Annotated[Merchant, Depends(current_merchant)]


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path inside the merchant area (no open redirect)."""
    if not target or not target.startswith("/merchant/") or target.startswith(LOGIN_PATH):
        return HOME_PATH
    if "//" in target or "\\" in target:
        return HOME_PATH
    return target


# --- password checks --------------------------------------------------------------------------


def failed_logins_of(request: Request) -> FailedLogins:
    failed: FailedLogins = request.app.state.failed_logins
    return failed


def password_checks_of(request: Request) -> PasswordChecks:
    checks: PasswordChecks = request.app.state.password_checks
    return checks


@cache
def _decoy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def check_password(owner: Owner | None, password: str) -> bool:
    """Argon2id check; an unknown address costs the same time as a known one."""
    if owner is None:
        verify_password(_decoy_hash(), password)
        return False
    return verify_password(owner.password_hash, password)


def find_owner(*, session: Session, email: str) -> Owner | None:
    return session.exec(select(Owner).where(Owner.email == normalize_email(email))).first()


@dataclass(frozen=True)
class Attempt:
    """A password tried for an owner's e-mail address: the owner when it was right."""

    owner: Owner | None
    # Refused before the password was looked at, and why: "failures" (too many wrong ones for
    # this account from this client), "client" (too many logins from this client), "busy"
    # (every password check is taken). The next try after `wait` seconds.
    refused: Literal["", "failures", "client", "busy"] = ""
    wait: int = 0
    delay: int = 0  # the password was wrong: the next try waits this long (0: at once)
    new_hash: str = ""  # attempt_password(new=…): the new password's hash, made in the same check
    cookie: str = ""  # attempt_login: the new session's cookie value


def attempt_password(
    *,
    request: Request,
    email: str,
    password: str,
    now: datetime,
    owner: Owner | None = None,
    new: str | None = None,
) -> Attempt:
    """Check a password against the owner of `email` (or the owner given), throttled per
    account and client (app/merchants/throttle.py); with `new`, hash that new password in the
    same check. No database connection is held while Argon2id runs."""
    engine = engine_of(request)
    email_key = email_hash(request, email)
    client = rate_limits_of(request).bucket(client_of(request))
    failed = failed_logins_of(request)
    wait = failed.wait(account=email_key, client=client, now=now)
    if wait:
        # Refused without looking at the password: guessing during the wait learns nothing.
        return Attempt(None, refused="failures", wait=wait)
    with password_checks_of(request).slot() as free:
        if not free:
            return Attempt(None, refused="busy", wait=BUSY_RETRY_SECONDS)
        if owner is None and len(email) <= 254:
            owner = in_read_session(engine, find_owner, email=email)  # the connection goes back
        right = check_password(owner, password[:1000])
        new_hash = service.new_password_hash(new, email=email) if right and new else ""
    if not right or owner is None:
        everywhere = in_write_session(engine, record_failure, email_key=email_key, now=now)
        delay = failed.record(
            account=email_key, client=client, now=now, free=free_failures(everywhere)
        )
        return Attempt(None, delay=delay)
    failed.forget(account=email_key, client=client)
    return Attempt(owner, new_hash=new_hash)


def attempt_login(*, request: Request, email: str, password: str, now: datetime) -> Attempt:
    """A login: counted against the client's limit across accounts, then attempt_password;
    the right password starts a session (its cookie value in Attempt.cookie)."""
    try:
        limit(request, "logins")
    except TooManyRequests as refusal:
        wait = int(refusal.headers.get("Retry-After", "60"))
        return Attempt(None, refused="client", wait=wait)
    attempt = attempt_password(request=request, email=email, password=password, now=now)
    if attempt.owner is None:
        return attempt
    cookie = in_write_session(
        engine_of(request), start_session, request=request, owner=attempt.owner, now=now
    )
    return replace(attempt, cookie=cookie)


def replace_password(
    *, request: Request, login: OwnerLogin, current: str, new: str, now: datetime
) -> Attempt:
    """Check the owner's current password and, when it is right, store `new` (the caller has
    judged it good enough) and end the owner's other sessions."""
    attempt = attempt_password(
        request=request, email=login.owner.email, password=current, now=now, owner=login.owner,
        new=new,
    )  # fmt: skip
    if attempt.owner is not None:
        in_write_session(
            engine_of(request), _store_password, owner_id=login.owner.id,
            password_hash=attempt.new_hash, keep=login.session_hash,
        )  # fmt: skip
    return attempt


def _store_password(*, session: Session, owner_id: int, password_hash: str, keep: str) -> None:
    owner = session.get(Owner, owner_id)
    assert owner is not None
    service.store_password_hash(session=session, owner=owner, password_hash=password_hash)
    end_other_sessions(session=session, owner_id=owner_id, keep=keep)
