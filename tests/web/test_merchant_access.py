"""Who may see and change what in the merchant area: login required everywhere, one owner
sees only their own merchant (route by route), and every form post needs its CSRF token."""

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.loyalty.models import Promotion, Tier
from app.merchants.models import Device, Merchant, Program
from tests.helpers.api import new_card, stamp
from tests.helpers.loyalty import add_promotion, add_tier
from tests.helpers.pages import HTML, form_token, log_in
from tests.helpers.shops import Shop, new_pairing

# Routes with ids in the path, filled with the OTHER merchant's ids: each must answer 404.
ID_ROUTES = {
    ("POST", "/merchant/program/{program_id}"): {
        "name": "Stolen", "reward_text": "all the coffee", "stamps_required": "1",
        "max_stamps_per_scan": "10", "cooldown_seconds": "0", "daily_cap": "0",
    },
    ("POST", "/merchant/program/{program_id}/{action}"): {"confirm": "yes"},
    ("GET", "/merchant/program/{program_id}/close"): {},
    ("POST", "/merchant/regulars/{tier_id}/delete"): {},
    ("POST", "/merchant/promotions/{promotion_id}/end"): {},
    ("POST", "/merchant/devices/{device_id}/rename"): {"label": "Mine now"},
    ("POST", "/merchant/devices/{device_id}/revoke"): {},
    ("GET", "/merchant/devices/pairing/{pairing_id}"): {},
    ("POST", "/merchant/feedback/{feedback_id}/reply"): {"text": "Thanks from a stranger"},
    ("POST", "/merchant/feedback/{feedback_id}/hide"): {"hidden": "1"},
    # The JSON API (sent as JSON, see below).
    ("PATCH", "/api/v1/merchant/programs/{program_id}"): {"name": "Stolen"},
    ("PUT", "/api/v1/merchant/programs/{program_id}/levels"): {
        "levels": [{"stamps": 1, "reward": "Stolen"}],
    },
    ("POST", "/api/v1/merchant/programs/{program_id}/pause"): {},
    ("POST", "/api/v1/merchant/programs/{program_id}/resume"): {},
    ("POST", "/api/v1/merchant/programs/{program_id}/archive"): {},
    ("POST", "/api/v1/merchant/programs/{program_id}/close"): {},
    ("DELETE", "/api/v1/merchant/tiers/{tier_id}"): {},
    ("POST", "/api/v1/merchant/promotions/{promotion_id}/end"): {},
}  # fmt: skip
# Form posts without ids: they act on the logged-in owner's merchant only.
FORM_POSTS = {
    "/merchant/logout": {},
    "/merchant/account/password": {"current": "x", "new": "y" * 12, "repeat": "y" * 12},
    "/merchant/account/logout-others": {},
    "/merchant/profile": {"shop_name": "Renamed", "locale": "en"},
    "/merchant/devices/pair": {"label": "Sneaky"},
    "/merchant/print/cards": {"count": "10"},
    "/merchant/feedback/tags": {"own": "Cake"},
    "/merchant/program": {"name": "Sneaky", "reward_text": "x", "stamps_required": "5",
                          "max_stamps_per_scan": "1", "cooldown_seconds": "0", "daily_cap": "0"},
    "/merchant/regulars": {"name": "Sneaky", "lifetime_stamps": "5"},
    "/merchant/regulars/lapse": {"months": "1"},
    "/merchant/promotions": {"kind": "campaign", "stamps": "5"},
    "/merchant/dashboard/numbers": {"cycle": "20"},
    "/merchant/dashboard/privacy-note": {},
    "/merchant/account/logo": {},
    "/merchant/account/logo/remove": {},
    "/merchant/account/accent": {"accent": "#1b5e20"},
}  # fmt: skip


@dataclass(frozen=True)
class Route:
    path: str
    methods: set[str]


def merchant_routes(app: FastAPI) -> list[Route]:
    """Every route of the merchant area and its API, whichever router it came from."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path or ""
        if isinstance(route, APIRoute) and path.startswith(("/merchant/", "/api/v1/merchant/")):
            found.append(Route(context.path or "", set(route.methods)))
    return found


def gets_without_parameters(app: FastAPI) -> list[str]:
    return sorted(
        r.path
        for r in merchant_routes(app)
        if "GET" in r.methods and "{" not in r.path and r.path != "/merchant/login"
    )


def fill(
    path: str, shop: Shop, feedback_id: str = "0" * 32, pairing_id: int = 1, tier_id: int = 1,
    promotion_id: int = 1,
) -> str:  # fmt: skip
    return (
        path.replace("{program_id}", str(shop.program_id))
        .replace("{tier_id}", str(tier_id))
        .replace("{promotion_id}", str(promotion_id))
        .replace("{device_id}", str(shop.device_id))
        .replace("{feedback_id}", feedback_id)
        .replace("{pairing_id}", str(pairing_id))
        .replace("{action}", "pause")
    )


def feedback_for(client: TestClient, shop: Shop) -> str:
    """A customer's feedback at shop (after a visit there); returns its id."""
    card = new_card(client)
    assert stamp(client, shop, card).status_code == 201
    body = {"token": card, "merchant": shop.slug, "rating": 4, "comment": "Nice"}
    response = client.post("/api/v1/feedback", json=body)
    assert response.status_code == 201, response.text
    feedback_id: str = response.json()["id"]
    return feedback_id


def test_every_page_and_export_needs_a_login(app: FastAPI, client: TestClient, shop: Shop) -> None:
    for route in merchant_routes(app):
        if route.path == "/merchant/login":
            continue
        for method in route.methods - {"HEAD"}:
            path = fill(route.path, shop)
            api = path.startswith("/api/")
            for accept, status in (("text/html", 401 if api else 303), ("application/json", 401)):
                response = client.request(
                    method, path, headers={"Accept": accept}, follow_redirects=False
                )
                assert response.status_code == status, (method, path, accept)
                if status == 303:
                    assert response.headers["location"].startswith("/merchant/login?next=")


def test_every_route_with_an_id_refuses_another_merchants_things(
    app: FastAPI, client: TestClient, shop: Shop, other_shop: Shop
) -> None:
    with_ids = {
        (method, r.path) for r in merchant_routes(app) for method in r.methods if "{" in r.path
    }
    assert with_ids == set(ID_ROUTES), "a new route with an id: add it to ID_ROUTES"
    their_feedback = feedback_for(client, other_shop)
    their_pairing = new_pairing(app, other_shop).id
    their_tier = add_tier(app, other_shop, "Gold", 20).id
    their_promotion = add_promotion(app, other_shop, "campaign", stamps=2).id
    assert their_tier and their_promotion
    log_in(client, shop.owner_email, shop.owner_password)
    token = form_token(client.get("/merchant/account", headers=HTML).text)
    for (method, path), data in ID_ROUTES.items():
        target = fill(path, other_shop, their_feedback, their_pairing, their_tier, their_promotion)
        actions = ("pause", "resume", "archive", "close") if "{action}" in path else ("",)
        for action in actions:
            url = target.replace("/pause", f"/{action}") if action else target
            # The JSON API takes JSON only; the pages take forms with their token.
            body: dict[str, Any] = (
                {"json": data}
                if url.startswith("/api/")
                else {"data": {"csrf_token": token, **data}}
            )
            response = client.request(method, url, headers=HTML, follow_redirects=False, **body)
            assert response.status_code in (403, 404), (method, url, response.status_code)
    with Session(app.state.engine) as session:
        program = session.get(Program, other_shop.program_id)
        device = session.get(Device, other_shop.device_id)
        assert program is not None and device is not None
        assert program.name != "Stolen" and program.active and program.stamps_required == 5
        assert device.label != "Mine now" and device.revoked_at is None
        assert program.archived_at is None and program.closed_at is None
        promotion = session.get(Promotion, their_promotion)
        assert session.get(Tier, their_tier) is not None
        assert promotion is not None and promotion.ended_at is None
    # B's owner still sees the feedback, unanswered and not hidden.
    with TestClient(app) as owner_b:
        log_in(owner_b, other_shop.owner_email, other_shop.owner_password)
        inbox = owner_b.get("/merchant/feedback", headers=HTML).text
        assert "Nice" in inbox and "Thanks from a stranger" not in inbox


def test_every_page_shows_only_the_owners_merchant(
    app: FastAPI, client: TestClient, shop: Shop, other_shop: Shop
) -> None:
    """Every GET page, export and API of the merchant area, logged in as A: nothing of B."""
    card = new_card(client)
    assert stamp(client, shop, card).status_code == 201
    assert stamp(client, other_shop, card).status_code == 201
    log_in(client, shop.owner_email, shop.owner_password)
    with Session(app.state.engine, expire_on_commit=False) as session:
        other = session.get(Merchant, other_shop.merchant_id)
        assert other is not None
        other_device = session.get(Device, other_shop.device_id)
        assert other_device is not None
        other_device.label = "Gruber counter"
        session.add(other_device)
        session.commit()
    paths = gets_without_parameters(app)
    assert {"/merchant/program", "/merchant/devices", "/merchant/exports/daily.csv"} <= set(paths)
    for path in paths:
        response = client.get(path, headers=HTML)
        assert response.status_code == 200, path
        for secret in (other.name, other.slug, "Gruber counter", "1 loaf"):
            assert secret not in response.text, (path, secret)
        if path.endswith(".csv") or "json" in response.headers.get("content-type", ""):
            continue
        assert "Café Sonne" in response.text, path


def test_daily_export_holds_only_the_owners_figures(
    client: TestClient, shop: Shop, other_shop: Shop
) -> None:
    for _ in range(11):
        card = new_card(client)
        for s in (shop, other_shop, other_shop):
            assert stamp(client, s, card, count=1).status_code in (201, 429)
    log_in(client, shop.owner_email, shop.owner_password)
    rows = list(csv.DictReader(io.StringIO(client.get("/merchant/exports/daily.csv").text)))
    # One day of this shop's eleven visits: the other shop's stamps are not in it.
    assert [(r["visits"], r["scans"], r["stamps"]) for r in rows] == [("11", "11", "11")]


@pytest.mark.parametrize("path", sorted(FORM_POSTS))
def test_a_form_post_without_or_with_a_wrong_token_is_refused(
    app: FastAPI, client: TestClient, shop: Shop, other_shop: Shop, path: str
) -> None:
    with TestClient(app) as other_browser:
        log_in(other_browser, other_shop.owner_email, other_shop.owner_password)
        foreign = form_token(other_browser.get("/merchant/account", headers=HTML).text)
    log_in(client, shop.owner_email, shop.owner_password)
    mine = form_token(client.get("/merchant/account", headers=HTML).text)
    for token in (None, "", "0" * 64, foreign, mine[:-1] + ("0" if mine[-1] != "0" else "1")):
        data: dict[str, Any] = dict(FORM_POSTS[path])
        if token is not None:
            data["csrf_token"] = token
        response = client.post(path, data=data, headers=HTML, follow_redirects=False)
        assert response.status_code == 403, (path, token)
        assert "Form expired" in response.text
    # Nothing happened: still logged in, same name, no device or card made.
    assert client.get("/merchant/account", headers=HTML).status_code == 200
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None and merchant.name == "Café Sonne"
        assert len(session.exec(select(Device)).all()) == 2


def test_every_form_post_is_covered(app: FastAPI) -> None:
    posts = {r.path for r in merchant_routes(app) if "POST" in r.methods and "{" not in r.path}
    # The login form has its own CSRF cookie (tests/merchants/test_auth.py); the JSON API takes
    # no form at all (tests/loyalty/test_owner_api.py).
    posts = {path for path in posts if not path.startswith("/api/")}
    posts.discard("/merchant/login")
    assert posts <= set(FORM_POSTS), f"add the new form to FORM_POSTS: {posts - set(FORM_POSTS)}"


def test_forms_carry_the_token(client: TestClient, shop: Shop) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    for path in ("/merchant/program", "/merchant/devices", "/merchant/account", "/merchant/print"):
        html = client.get(path, headers=HTML).text
        forms = re.findall(r"<form[^>]*method=\"post\".*?</form>", html, re.S)
        assert forms, path
        for form in forms:
            assert 'name="csrf_token" value="' in form, (path, form[:80])
