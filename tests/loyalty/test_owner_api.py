"""The merchant's JSON API for the loyalty levers (/api/v1/merchant, the owner's session):
programs and reward levels, archive and close-out, tiers, promotions with their summary in the
request's language; JSON only; another shop's things are not found."""

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.helpers.api import card_programs, new_card, redeem, stamp, till_programs
from tests.helpers.clock import Clock
from tests.helpers.loyalty import add_promotion, add_tier
from tests.helpers.pages import log_in_owner
from tests.helpers.shops import Shop

API = "/api/v1/merchant"
PROBLEM = "application/problem+json"
LUNCH = {"name": "Mittagsmenü", "stamps_required": 6, "reward": "1 Dessert", "cooldown_seconds": 0}


def call(client: TestClient, method: str, path: str, body: Any = None, **headers: str) -> Any:
    """A write as a client of the API sends it: JSON, also when there is no body."""
    return client.request(method, API + path, json={} if body is None else body, headers=headers)


def test_programs_with_levels_reach_the_till_and_a_level_is_redeemed(
    client: TestClient, shop: Shop
) -> None:
    log_in_owner(client, shop)
    levels = [{"stamps": 3, "reward": "Espresso"}, {"stamps": 5, "reward": "Cappuccino"}]
    created = call(client, "POST", "/programs", {**LUNCH, "levels": levels})
    assert created.status_code == 201, created.text
    lunch = created.json()
    assert (lunch["status"], lunch["active"], lunch["expire_months"]) == ("running", True, 0)
    assert [(lv["stamps"], lv["reward"]) for lv in lunch["levels"]] == [
        (3, "Espresso"), (5, "Cappuccino"),
    ]  # fmt: skip

    listed = client.get(f"{API}/programs").json()
    assert [p["name"] for p in listed] == ["10 stamps", "Mittagsmenü"]
    at_till = till_programs(client, shop)
    assert set(at_till) == {"10 stamps", "Mittagsmenü"}
    assert [lv["reward"] for lv in at_till["Mittagsmenü"]["levels"]] == ["Espresso", "Cappuccino"]

    # The cashier redeems the lower level: its three stamps go, the rest stays.
    card = new_card(client)
    assert stamp(client, shop, card, count=4, program_id=lunch["id"]).status_code == 201
    espresso = lunch["levels"][0]["id"]
    done = redeem(client, shop, card, program_id=lunch["id"], reward_id=espresso)
    assert done.status_code == 201, done.text
    assert done.json()["reward"] == {"id": espresso, "stamps": 3, "text": "Espresso"}
    assert card_programs(client, card)["Mittagsmenü"]["stamps"] == 1

    # Levels are replaced as a whole; a level that keeps its stamps keeps its id.
    put = call(client, "PUT", f"/programs/{lunch['id']}/levels",
               {"levels": [{"stamps": 3, "reward": "Doppelter Espresso"}]})  # fmt: skip
    assert put.status_code == 200
    assert put.json()["levels"] == [{"id": espresso, "stamps": 3, "reward": "Doppelter Espresso"}]

    # PATCH changes what it names; the rest stays.
    patched = call(client, "PATCH", f"/programs/{lunch['id']}", {"expire_months": 6})
    assert patched.status_code == 200
    assert (patched.json()["expire_months"], patched.json()["stamps_required"]) == (6, 6)
    assert patched.json()["levels"][0]["reward"] == "Doppelter Espresso"


def test_pause_archive_and_close(client: TestClient, shop: Shop) -> None:
    log_in_owner(client, shop)
    program = f"/programs/{shop.program_id}"
    card = new_card(client)
    assert stamp(client, shop, card, count=10).status_code == 201

    paused = call(client, "POST", f"{program}/pause")
    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    assert call(client, "POST", f"{program}/resume").json()["status"] == "running"

    # Closing needs archiving first.
    not_yet = call(client, "POST", f"{program}/close")
    assert not_yet.status_code == 409 and "Archive the program first" in not_yet.json()["detail"]

    archived = call(client, "POST", f"{program}/archive")
    assert (archived.json()["status"], archived.json()["active"]) == ("archived", False)
    refused = stamp(client, shop, card)
    assert refused.status_code == 409 and refused.json()["code"] == "program-ended"
    assert call(client, "POST", f"{program}/resume").status_code == 409
    assert stamp(client, shop, card, count=1).status_code == 409

    # A reward collected before stays redeemable.
    assert redeem(client, shop, card).status_code == 201
    assert card_programs(client, card)["10 stamps"]["ended"] is True

    closed = call(client, "POST", f"{program}/close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert card_programs(client, card) == {}
    assert till_programs(client, shop) == {}


def test_close_books_the_stamps_out(client: TestClient, shop: Shop) -> None:
    log_in_owner(client, shop)
    created = call(client, "POST", "/programs", LUNCH).json()
    card = new_card(client)
    assert stamp(client, shop, card, count=4, program_id=created["id"]).status_code == 201
    call(client, "POST", f"/programs/{created['id']}/archive")
    assert call(client, "POST", f"/programs/{created['id']}/close").status_code == 200
    # Only the closed program's stamps went; the shop's first program is still on the card.
    assert stamp(client, shop, card).status_code == 201
    assert set(card_programs(client, card)) == {"10 stamps"}
    listed = {p["name"]: p["status"] for p in client.get(f"{API}/programs").json()}
    assert listed == {"10 stamps": "running", "Mittagsmenü": "closed"}


def test_tiers_show_on_the_card(client: TestClient, shop: Shop, clock: Clock) -> None:
    log_in_owner(client, shop)
    made = call(client, "POST", "/tiers",
                {"name": "Stammgast", "lifetime_stamps": 5, "bonus_per_visit": 1,
                 "perk": "10 % auf Kuchen"})  # fmt: skip
    assert made.status_code == 201
    tier = made.json()
    assert tier == {**tier, "name": "Stammgast", "bonus_per_visit": 1, "perk": "10 % auf Kuchen"}
    lapse = call(client, "PUT", "/tiers/lapse", {"months": 6})
    assert lapse.json() == {"months": 6}
    assert client.get(f"{API}/tiers").json() == {"tiers": [tier], "lapse_months": 6}

    card = new_card(client)
    assert stamp(client, shop, card, count=3).status_code == 201
    view = card_programs(client, card)["10 stamps"]
    assert view["tier"] is None
    assert view["next_tier"] == {"name": "Stammgast", "lifetime_stamps_needed": 2}
    clock.advance(61)
    assert stamp(client, shop, card, count=2).status_code == 201
    view = card_programs(client, card)["10 stamps"]
    assert view["tier"] == {"name": "Stammgast", "perk": "10 % auf Kuchen"}
    clock.advance(61)
    perk = stamp(client, shop, card).json()["bonus"]
    assert perk == [{"promotion_id": None, "title": "Stammgast", "stamps": 1}]

    duplicate = call(client, "POST", "/tiers", {"name": "Auch", "lifetime_stamps": 5})
    assert duplicate.status_code == 409
    assert call(client, "DELETE", f"/tiers/{tier['id']}").status_code == 204
    assert card_programs(client, card)["10 stamps"]["tier"] is None
    assert call(client, "DELETE", f"/tiers/{tier['id']}").status_code == 404


HAPPY_HOUR = {
    "kind": "multiplier", "title": "Happy Hour", "days": ["tue", "wed", "thu"],
    "from": "14:00", "to": "16:00", "ends": "2026-03-31", "budget": 500,
}  # fmt: skip


def test_promotions_in_plain_words_in_the_requests_language(
    client: TestClient, shop: Shop, clock: Clock
) -> None:
    clock.now = datetime(2026, 3, 3, 13, 30, tzinfo=UTC)  # a Tuesday, 14:30 in Vienna
    log_in_owner(client, shop)
    created = call(client, "POST", "/promotions", HAPPY_HOUR)
    assert created.status_code == 201, created.text
    happy = created.json()
    assert happy == {
        **happy, "kind": "multiplier", "factor": 2, "stamps": None, "days": ["tue", "wed", "thu"],
        "from": "14:00", "to": "16:00", "away_days": None, "ends": "2026-03-31", "budget": 500,
        "spent": 0, "status": "running",
        "summary": "Tuesdays to Thursdays 14\u201316 h, every stamp counts double, until 31 March, "
                   "at most 500 extra stamps",
    }  # fmt: skip
    german = client.get(f"{API}/promotions", headers={"Accept-Language": "de-AT,de;q=0.9"})
    assert german.json()[0]["summary"] == (
        "Dienstag bis Donnerstag 14\u201316 Uhr zählt jeder Stempel doppelt, bis 31. März, "
        "höchstens 500 Extrastempel"
    )

    card = new_card(client)
    assert stamp(client, shop, card, count=2).json()["bonus"][0]["stamps"] == 2
    welcome = call(client, "POST", "/promotions", {"kind": "welcome", "stamps": 2},
                   **{"Accept-Language": "de"})  # fmt: skip
    assert welcome.status_code == 201
    # Untitled, it is called by its kind in the shop's language (German): customers read it.
    assert welcome.json()["title"] == "Willkommen"
    assert welcome.json()["summary"] == "+2 Stempel beim ersten Besuch einer Karte"
    listed = client.get(f"{API}/promotions").json()
    assert [(p["id"], p["spent"]) for p in listed] == [(welcome.json()["id"], 0), (happy["id"], 2)]

    ended = call(client, "POST", f"/promotions/{happy['id']}/end")
    assert (ended.json()["status"], ended.json()["spent"]) == ("ended", 2)
    assert ended.json()["ended_at"] is not None
    listed = client.get(f"{API}/promotions").json()
    assert [p["status"] for p in listed] == ["running", "ended"]  # running first


def test_bad_input_is_a_422_that_says_what_is_wrong(client: TestClient, shop: Shop) -> None:
    log_in_owner(client, shop)
    cases = [
        ("POST", "/programs", {**LUNCH, "levels": [{"stamps": 6, "reward": "Alles"}]},
         "A reward level needs fewer stamps than the main reward (1 to 5)."),
        ("POST", "/programs", {**LUNCH, "stamps_required": 0}, "stamps_required: Input should be"),
        ("PATCH", f"/programs/{shop.program_id}", {"stamps_required": 200}, "stamps_required"),
        ("PUT", f"/programs/{shop.program_id}/levels",
         {"levels": [{"stamps": 4, "reward": "A"}, {"stamps": 4, "reward": "B"}]},
         "Two reward levels at 4 stamps."),
        ("POST", "/promotions", {"kind": "welcome", "factor": 3},
         "factor is for a multiplier promotion, not a welcome."),
        ("POST", "/promotions", {"kind": "multiplier", "days": ["tue", "someday"]},
         "unknown weekday 'someday'"),
        ("POST", "/promotions", {"kind": "multiplier", "from": "25:00", "to": "26:00"},
         "'25:00' is not a time of day."),
        ("POST", "/promotions", {"kind": "multiplier", "from": "16:00", "to": "14:00"},
         "The time window must end after it starts."),
        ("POST", "/promotions", {"kind": "winback", "stamps": 1},
         "A win-back needs the days away (at least 1)."),
        ("POST", "/promotions", {"kind": "birthday"}, "kind: Input should be"),
        ("POST", "/tiers", {"name": "", "lifetime_stamps": 5}, "name: String should have"),
        ("PUT", "/tiers/lapse", {"months": 61}, "months: Input should be less than or equal"),
    ]  # fmt: skip
    for method, path, body, detail in cases:
        response = call(client, method, path, body)
        assert response.status_code == 422, (path, body, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert detail in response.json()["detail"], (body, response.json())
    # Nothing of it was kept.
    assert [p["name"] for p in client.get(f"{API}/programs").json()] == ["10 stamps"]
    assert client.get(f"{API}/promotions").json() == []


def test_another_shops_program_tier_and_promotion_are_not_found(
    app: FastAPI, client: TestClient, shop: Shop, other_shop: Shop
) -> None:
    tier = add_tier(app, other_shop, "Gold", 20)
    promotion = add_promotion(app, other_shop, "welcome", stamps=2)
    log_in_owner(client, shop)
    theirs = f"/programs/{other_shop.program_id}"
    for method, path, body in (
        ("PATCH", theirs, {"name": "Mine"}),
        ("PUT", f"{theirs}/levels", {"levels": []}),
        ("POST", f"{theirs}/pause", None),
        ("POST", f"{theirs}/archive", None),
        ("POST", f"{theirs}/close", None),
        ("DELETE", f"/tiers/{tier.id}", None),
        ("POST", f"/promotions/{promotion.id}/end", None),
        ("POST", "/promotions", {"kind": "welcome", "program_id": other_shop.program_id}),
    ):
        response = call(client, method, path, body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == PROBLEM
    # Nothing of theirs is listed either.
    assert [p["id"] for p in client.get(f"{API}/programs").json()] == [shop.program_id]
    assert client.get(f"{API}/tiers").json()["tiers"] == []
    assert client.get(f"{API}/promotions").json() == []


def test_writes_take_json_only_and_need_the_login(client: TestClient, shop: Shop) -> None:
    # Without a login: 401, as for every merchant route.
    assert call(client, "POST", "/programs", LUNCH).status_code == 401
    assert client.get(f"{API}/promotions").status_code == 401
    log_in_owner(client, shop)
    # A form, or a body-less request, as another site's page could make the browser send them
    # with the owner's cookie: refused before anything is done.
    for send in (
        lambda: client.post(f"{API}/programs", data={"name": "x", "stamps_required": "5"}),
        lambda: client.post(f"{API}/programs/{shop.program_id}/archive"),
        lambda: client.post(
            f"{API}/programs/{shop.program_id}/pause", content="{}",
            headers={"Content-Type": "text/plain"},
        ),
        lambda: client.delete(f"{API}/tiers/1"),
    ):  # fmt: skip
        response = send()
        assert response.status_code == 415, response.text
        assert response.json()["code"] == "unsupported-media-type"
    listed = client.get(f"{API}/programs").json()
    assert [(p["name"], p["status"]) for p in listed] == [("10 stamps", "running")]


def test_the_api_is_documented_for_the_owners_session(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    routes = {
        ("get", "/programs"): "merchant programs", ("post", "/programs"): "merchant programs",
        ("patch", "/programs/{program_id}"): "merchant programs",
        ("put", "/programs/{program_id}/levels"): "merchant programs",
        ("post", "/programs/{program_id}/close"): "merchant programs",
        ("put", "/tiers/lapse"): "merchant tiers", ("delete", "/tiers/{tier_id}"): "merchant tiers",
        ("post", "/promotions"): "merchant promotions",
        ("post", "/promotions/{promotion_id}/end"): "merchant promotions",
    }  # fmt: skip
    for (method, path), tag in routes.items():
        operation = spec["paths"][API + path][method]
        assert operation["tags"] == [tag], path
        assert operation["security"] == [{"ownerSession": []}], path
        if method != "get":
            assert "415" in operation["responses"], path
    body = spec["components"]["schemas"]["PromotionCreate"]["properties"]
    assert {"kind", "days", "from", "to", "away_days", "holdout_percent"} <= set(body)
