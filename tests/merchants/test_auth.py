"""Owner login: sessions, cookie flags, CSRF, throttling, logout, password change."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.config import Settings
from app.main import create_app
from app.merchants import auth, throttle
from app.merchants.models import LoginThrottle, OwnerSession
from tests.helpers.clock import Clock
from tests.helpers.pages import HTML, form_token, log_in
from tests.helpers.shops import Shop, make_shop


def test_login_sets_a_strict_session_cookie_and_stores_only_its_hash(
    client: TestClient, shop: Shop, app: FastAPI
) -> None:
    response = log_in(client, shop.owner_email.upper() + " ", shop.owner_password)
    assert response.status_code == 303
    assert response.headers["location"] == "/merchant/dashboard"
    cookie = next(c for c in response.headers.get_list("set-cookie") if "treu_owner=" in c)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http in the test, public URL http
    value = client.cookies.get("treu_owner")
    assert value
    with Session(app.state.engine) as session:
        stored = session.exec(select(OwnerSession)).all()
    assert len(stored) == 1
    assert stored[0].id != value and value not in stored[0].id
    assert stored[0].merchant_id == shop.merchant_id


def test_cookie_is_secure_behind_https(app: FastAPI, shop: Shop) -> None:
    with TestClient(app, base_url="https://treu.test") as client:
        response = log_in(client, shop.owner_email, shop.owner_password)
        assert response.status_code == 303
        cookie = next(c for c in response.headers.get_list("set-cookie") if "treu_owner=" in c)
        assert "Secure" in cookie and "HttpOnly" in cookie


def test_cookie_is_secure_when_the_public_url_is_https(app: FastAPI, shop: Shop) -> None:
    # TLS ends at a reverse proxy: the app sees http, the browser https.
    app.state.settings.public_url = "https://stamps.example"
    with TestClient(app) as client:
        response = client.get("/merchant/login", headers=HTML)
        cookie = next(c for c in response.headers.get_list("set-cookie") if "treu_login=" in c)
        assert "Secure" in cookie and "HttpOnly" in cookie


def test_wrong_password_is_refused_with_the_form_again(client: TestClient, shop: Shop) -> None:
    response = log_in(client, shop.owner_email, "not-the-password")
    assert response.status_code == 401
    assert "The e-mail address or the password is wrong." in response.text
    assert "treu_owner" not in client.cookies
    unknown = log_in(client, "nobody@example.org", "whatever")
    assert unknown.status_code == 401
    assert "The e-mail address or the password is wrong." in unknown.text


def test_refusals_come_in_the_owners_language(client: TestClient, shop: Shop) -> None:
    client.cookies.set("lang", "de")
    for _ in range(5):
        refused = log_in(client, shop.owner_email, "not-the-password")
    assert "E-Mail-Adresse oder Passwort stimmen nicht." in refused.text
    assert "Versuchen Sie es in 30 Sekunden wieder." in refused.text


def test_login_without_or_with_a_wrong_csrf_token_is_refused(
    client: TestClient, shop: Shop
) -> None:
    client.get("/merchant/login", headers=HTML)
    for token in ("", "00" * 32):
        data = {"email": shop.owner_email, "password": shop.owner_password, "csrf_token": token}
        response = client.post("/merchant/login", data=data, headers=HTML, follow_redirects=False)
        assert response.status_code == 403
        assert "treu_owner" not in client.cookies
    # A token from another browser (another login cookie) does not work either.
    with TestClient(client.app) as other:
        foreign = form_token(other.get("/merchant/login", headers=HTML).text)
    data = {"email": shop.owner_email, "password": shop.owner_password, "csrf_token": foreign}
    response = client.post("/merchant/login", data=data, headers=HTML, follow_redirects=False)
    assert response.status_code == 403


def test_lockout_after_five_failures_grows_and_ends(
    client: TestClient, shop: Shop, app: FastAPI, clock: object
) -> None:
    for _ in range(4):
        assert log_in(client, shop.owner_email, "wrong").status_code == 401
    fifth = log_in(client, shop.owner_email, "wrong")
    assert fifth.status_code == 401 and "try again in 30 seconds" in fifth.text
    # Even the right password is refused while the wait lasts, without being checked.
    locked = log_in(client, shop.owner_email, shop.owner_password)
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == "30"
    assert "treu_owner" not in client.cookies
    clock.advance(31)  # type: ignore[attr-defined]
    sixth = log_in(client, shop.owner_email, "wrong")
    assert "try again in 60 seconds" in sixth.text
    clock.advance(61)  # type: ignore[attr-defined]
    assert log_in(client, shop.owner_email, shop.owner_password).status_code == 303
    # The right password forgot this browser's failures: a typo now costs no wait.
    with TestClient(app) as same_address:
        again = log_in(same_address, shop.owner_email, "wrong")
        assert again.status_code == 401 and "try again" not in again.text


def test_lockout_is_per_account_and_stores_no_address(
    client: TestClient, shop: Shop, other_shop: Shop, app: FastAPI
) -> None:
    for _ in range(5):
        log_in(client, shop.owner_email, "wrong")
    assert log_in(client, shop.owner_email, shop.owner_password).status_code == 429
    assert log_in(client, other_shop.owner_email, other_shop.owner_password).status_code == 303
    with Session(app.state.engine) as session:
        rows = session.exec(select(LoginThrottle)).all()
    # The stored brake counts the account's failures from everywhere, under a keyed hash.
    assert len(rows) == 1 and rows[0].failures == 5
    assert shop.owner_email not in rows[0].email_hash
    assert "testclient" not in repr(rows[0])


def test_delays_double_up_to_a_quarter_of_an_hour() -> None:
    assert [throttle.delay_after(n) for n in range(1, 9)] == [0, 0, 0, 0, 30, 60, 120, 240]
    assert throttle.delay_after(40) == 15 * 60
    assert [throttle.delay_after(n, free=1) for n in range(1, 4)] == [30, 60, 120]


def from_address(app: FastAPI, address: str) -> TestClient:
    """A browser at another network address (the rate limiter's and the throttle's client)."""
    return TestClient(app, raise_server_exceptions=False, client=(address, 50000))


def test_a_stranger_cannot_lock_the_owner_out(app: FastAPI, shop: Shop) -> None:
    with from_address(app, "203.0.113.9") as stranger:
        answers = [log_in(stranger, shop.owner_email, f"guess {n}").status_code for n in range(8)]
        assert answers[:5] == [401] * 5 and set(answers[5:]) == {429}
        # The stranger's own right guess would be refused unchecked while the wait lasts.
        assert log_in(stranger, shop.owner_email, shop.owner_password).status_code == 429
    with from_address(app, "198.51.100.7") as owner:
        assert log_in(owner, shop.owner_email, shop.owner_password).status_code == 303


def test_guessing_from_many_addresses_brakes_each_one_sooner(app: FastAPI, shop: Shop) -> None:
    # Nineteen failures, four from each address: none of them is held up yet...
    assert throttle.BRAKE_AFTER == 20
    for n in range(5):
        with from_address(app, f"203.0.113.{n + 1}") as stranger:
            for _ in range(4 if n < 4 else 3):
                refused = log_in(stranger, shop.owner_email, "guess")
                assert refused.status_code == 401 and "try again" not in refused.text
    # ...but with the twentieth the account is under attack: a new address waits after its
    # first failure.
    with from_address(app, "203.0.113.99") as newcomer:
        first = log_in(newcomer, shop.owner_email, "guess")
        assert first.status_code == 401 and "try again in 30 seconds" in first.text
        assert log_in(newcomer, shop.owner_email, "guess").status_code == 429
    # The owner, who failed nowhere, is not held up at all.
    with from_address(app, "198.51.100.7") as owner:
        assert log_in(owner, shop.owner_email, shop.owner_password).status_code == 303


@pytest.fixture
def limited_app(settings: Settings, clock: Clock) -> Iterator[FastAPI]:
    """The app with the per-client limits on (the suite's default settings switch them off)."""
    application = create_app(settings.model_copy(update={"rate_limits": "on"}), clock=clock)
    yield application
    application.state.writer.stop()
    application.state.engine.dispose()


def test_one_client_cannot_try_address_after_address(limited_app: FastAPI) -> None:
    make_shop(limited_app, "Café Sonne")
    with from_address(limited_app, "203.0.113.9") as prober:
        answers = [log_in(prober, f"owner{n}@example.org", "Sommer2024!") for n in range(15)]
    assert [a.status_code for a in answers[:10]] == [401] * 10
    refused = answers[10]
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
    assert "Too many logins from this network: try again in" in refused.text
    assert 'name="csrf_token"' in refused.text  # the login form again, not an error page
    assert {a.status_code for a in answers[10:]} == {429}
    # Another network is not held up by it.
    with from_address(limited_app, "198.51.100.7") as other:
        assert log_in(other, "owner@cafe-sonne.example", "wrong").status_code == 401


def test_logins_beyond_the_checks_at_once_are_told_to_come_back(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    checks = app.state.password_checks
    # Two checks running (as two logins at this very moment would).
    with checks.slot() as first, checks.slot() as second:
        assert first and second
        busy = log_in(client, shop.owner_email, shop.owner_password)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
    assert "Please try again shortly." in busy.text and 'name="csrf_token"' in busy.text
    assert "treu_owner" not in client.cookies
    # A refused check counts as no failure; with a check free again the login goes through.
    assert log_in(client, shop.owner_email, shop.owner_password).status_code == 303


def test_old_failures_are_forgotten(
    client: TestClient, shop: Shop, app: FastAPI, clock: object
) -> None:
    for _ in range(4):
        log_in(client, shop.owner_email, "wrong")
    clock.advance(25 * 3600)  # type: ignore[attr-defined]
    assert log_in(client, shop.owner_email, "wrong").status_code == 401
    with Session(app.state.engine) as session:
        assert session.exec(select(LoginThrottle)).one().failures == 1


@pytest.mark.parametrize(
    ("wanted", "landing"),
    [
        ("/merchant/devices", "/merchant/devices"),
        ("https://evil.example/", "/merchant/dashboard"),
        ("//evil.example/merchant", "/merchant/dashboard"),
        ("/merchant/..//evil.example", "/merchant/dashboard"),
        ("/merchant/login", "/merchant/dashboard"),
    ],
)
def test_login_goes_back_only_inside_the_merchant_area(
    client: TestClient, shop: Shop, wanted: str, landing: str
) -> None:
    response = log_in(client, shop.owner_email, shop.owner_password, next_path=wanted)
    assert response.headers["location"] == landing


def test_logout_ends_the_session_on_the_server(
    client: TestClient, shop: Shop, app: FastAPI
) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    stolen = client.cookies.get("treu_owner")
    page = client.get("/merchant/account", headers=HTML)
    assert page.status_code == 200
    token = form_token(page.text)
    response = client.post(
        "/merchant/logout", data={"csrf_token": token}, headers=HTML, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/merchant/login?bye=1"
    # Replaying the old cookie does not work: the session is gone, not just the cookie.
    client.cookies.set("treu_owner", stolen or "")
    again = client.get("/merchant/account", headers=HTML, follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"].startswith("/merchant/login?next=")
    with Session(app.state.engine) as session:
        assert session.exec(select(OwnerSession)).all() == []


def test_sessions_expire(client: TestClient, shop: Shop, clock: object) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    assert client.get("/merchant/account", headers=HTML).status_code == 200
    clock.advance(auth.SESSION_LIFETIME.total_seconds() + 1)  # type: ignore[attr-defined]
    response = client.get("/merchant/account", headers=HTML, follow_redirects=False)
    assert response.status_code == 303


def test_without_login_pages_redirect_and_api_calls_get_401(client: TestClient) -> None:
    page = client.get("/merchant/account?x=1", headers=HTML, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/merchant/login?next=%2Fmerchant%2Faccount%3Fx%3D1"
    api = client.get("/merchant/account", headers={"Accept": "application/json"})
    assert api.status_code == 401
    assert api.headers["content-type"] == "application/problem+json"
    assert api.json()["code"] == "login-required"


def change_password(client: TestClient, current: str, new: str, repeat: str | None = None) -> Any:
    token = form_token(client.get("/merchant/account", headers=HTML).text)
    data = {"csrf_token": token, "current": current, "new": new, "repeat": repeat or new}
    return client.post("/merchant/account/password", data=data, headers=HTML,
                       follow_redirects=False)  # fmt: skip


def test_password_change(app: FastAPI, client: TestClient, shop: Shop) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    with TestClient(app) as other_browser:
        log_in(other_browser, shop.owner_email, shop.owner_password)
        assert other_browser.get("/merchant/account", headers=HTML).status_code == 200

        wrong = change_password(client, "not-it", "a new long password")
        assert wrong.status_code == 400 and "The current password is wrong." in wrong.text
        differ = change_password(client, shop.owner_password, "a new long password", "another")
        assert differ.status_code == 400 and "The two new passwords differ." in differ.text
        short = change_password(client, shop.owner_password, "short")
        assert short.status_code == 400 and "at least 10" in short.text

        done = change_password(client, shop.owner_password, "a new long password")
        assert done.status_code == 303
        page = client.get(done.headers["location"], headers=HTML)
        assert "Your password was changed. Other browsers were logged out." in page.text
        # The other browser's session ended; this one goes on.
        again = other_browser.get("/merchant/account", headers=HTML, follow_redirects=False)
        assert again.status_code == 303
    assert client.get("/merchant/account", headers=HTML).status_code == 200
    with TestClient(app) as fresh:
        assert log_in(fresh, shop.owner_email, shop.owner_password).status_code == 401
        assert log_in(fresh, shop.owner_email, "a new long password").status_code == 303


def test_wrong_current_passwords_count_towards_the_lockout(client: TestClient, shop: Shop) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    for _ in range(5):
        change_password(client, "guess", "a new long password")
    locked = change_password(client, shop.owner_password, "a new long password")
    assert locked.status_code == 429 and "Too many wrong passwords" in locked.text


def test_logout_others_keeps_this_browser(app: FastAPI, client: TestClient, shop: Shop) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    with TestClient(app) as other_browser:
        log_in(other_browser, shop.owner_email, shop.owner_password)
        token = form_token(client.get("/merchant/account", headers=HTML).text)
        client.post("/merchant/account/logout-others", data={"csrf_token": token}, headers=HTML)
        gone = other_browser.get("/merchant/account", headers=HTML, follow_redirects=False)
        assert gone.status_code == 303
    assert client.get("/merchant/account", headers=HTML).status_code == 200


def test_login_page_when_logged_in_goes_straight_on(client: TestClient, shop: Shop) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    response = client.get("/merchant/login?next=/merchant/devices", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/merchant/devices"


def test_area_pages_are_never_cached(client: TestClient, shop: Shop) -> None:
    assert client.get("/merchant/login", headers=HTML).headers["cache-control"] == "no-store"
    log_in(client, shop.owner_email, shop.owner_password)
    for path in ("/merchant/account", "/merchant/program", "/merchant/devices"):
        assert client.get(path, headers=HTML).headers["cache-control"] == "no-store", path
