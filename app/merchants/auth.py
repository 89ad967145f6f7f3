"""Owner login for the merchant area: server-side sessions, CSRF tokens, login throttling.

The session cookie holds 256 random bits; the database keeps only a keyed BLAKE2b of it (with
the `session` key), so neither a copy of the table nor a log line can be replayed as a login,
and logout deletes the row, which ends the session everywhere at once. CSRF tokens are
synchroniser tokens derived from the cookie value with the same key: nothing to store, and a
token is only good together with the cookie it was derived from.
"""

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import case, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from app.db import SessionDep
from app.dependencies import now_of, settings_of
from app.errors import wants_html
from app.merchants.exceptions import CsrfRefused, LoginRequired
from app.merchants.models import LoginThrottle, Merchant, Owner, OwnerSession
from app.merchants.service import hash_password, verify_password
from app.tokens.crypto import keyed_hash
from app.tokens.dependencies import keyring_of

SESSION_COOKIE = "treu_owner"
# Before login there is no session to bind the login form's CSRF token to; this cookie is it.
LOGIN_COOKIE = "treu_login"
SESSION_LIFETIME = timedelta(days=14)
LOGIN_PATH = "/merchant/login"
HOME_PATH = "/merchant/dashboard"

# Five wrong passwords are free (typos happen); then each further one doubles the wait.
FREE_FAILURES = 5
FIRST_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 15 * 60
# A failure this old no longer counts: the owner who mistyped last week starts afresh.
FAILURE_MEMORY = timedelta(hours=24)


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


# --- throttling -------------------------------------------------------------------------------


def delay_after(failures: int) -> int:
    """Seconds to wait after this many failures in a row: 0, then 30 s doubling to 15 min."""
    if failures < FREE_FAILURES:
        return 0
    return int(min(FIRST_DELAY_SECONDS * 2 ** (failures - FREE_FAILURES), MAX_DELAY_SECONDS))


def wait_seconds(*, session: Session, email_key: str, now: datetime) -> int:
    """How long this e-mail address must wait before its next login attempt (0: go ahead)."""
    row = session.get(LoginThrottle, email_key)
    if row is None or row.locked_until is None or row.locked_until <= now:
        return 0
    return max(1, int((row.locked_until - now).total_seconds()))


def record_failure(*, session: Session, email_key: str, now: datetime) -> int:
    """Count a failed login atomically; returns the wait it imposes (seconds, 0 for none)."""
    table = LoginThrottle.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    make_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    forgotten = now - FAILURE_MEMORY
    # One statement, so two wrong passwords sent at once are both counted.
    first = make_insert(table).values(
        email_hash=email_key, failures=1, last_failure_at=now, locked_until=None
    )
    stmt = first.on_conflict_do_update(
        index_elements=[table.c.email_hash],
        set_={
            "failures": case((table.c.last_failure_at < forgotten, 1), else_=table.c.failures + 1),
            "last_failure_at": now,
        },
    ).returning(table.c.failures)
    failures = int(session.execute(stmt).scalar_one())
    delay = delay_after(failures)
    locked_until = now + timedelta(seconds=delay) if delay else None
    session.execute(
        table.update().where(table.c.email_hash == email_key).values(locked_until=locked_until)
    )
    return delay


def forget_failures(*, session: Session, email_key: str) -> None:
    session.execute(delete(LoginThrottle).where(col(LoginThrottle.email_hash) == email_key))


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
    wait: int = 0  # refused before the password was looked at: the next try after this many s
    delay: int = 0  # the password was wrong: the next try waits this long (0: at once)


def attempt_password(
    *,
    read: Session,
    write: Session,
    request: Request,
    email: str,
    password: str,
    now: datetime,
    owner: Owner | None = None,
) -> Attempt:
    """Check a password against the owner of `email` (or the owner given), throttled per keyed
    e-mail address. A right password does not clear the failures: the caller does that once
    what the password was for has succeeded (forget_failures)."""
    email_key = email_hash(request, email)
    wait = wait_seconds(session=read, email_key=email_key, now=now)
    if wait:
        # Refused without looking at the password: guessing during the wait learns nothing.
        return Attempt(None, wait=wait)
    if owner is None and len(email) <= 254:
        owner = find_owner(session=read, email=email)
    if not check_password(owner, password[:1000]) or owner is None:
        return Attempt(None, delay=record_failure(session=write, email_key=email_key, now=now))
    return Attempt(owner)
