"""The way in, as the owner reads it in the KPI API: the funnel per month of first stamp and the
sources of cards, on hand-counted ledgers made through the real API with the test clock.

k is 10 (the default): a step of 10 cards is shown, one of 9 is hidden.
"""

import csv
import io
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.analytics.kpis import Period
from app.analytics.rollups import day_number
from app.db import write_engine
from app.tokens.service import create_card
from tests.helpers.api import new_card, redeem, stamp
from tests.helpers.clock import Clock
from tests.helpers.pages import log_in_owner
from tests.helpers.rollups import assert_consistent
from tests.helpers.shops import Shop, make_shop

DAY = 86_400
VIENNA = ZoneInfo("Europe/Vienna")


def kpis(client: TestClient, shop: Shop) -> dict[str, Any]:
    if "treu_owner" not in client.cookies:
        log_in_owner(client, shop)
    response = client.get("/api/v1/merchant/kpis?period=30d")
    assert response.status_code == 200, response.text
    return dict(response.json())


def month_row(body: dict[str, Any], clock_at: Any) -> dict[str, Any]:
    month = clock_at.astimezone(VIENNA).strftime("%Y-%m")
    return next(row for row in body["funnel"] if row["month"] == month)


def values(figures: dict[str, Any]) -> dict[str, Any]:
    return {name: f["value"] for name, f in figures.items()}


def test_each_step_of_the_funnel_is_counted_once_and_a_deleted_card_leaves_it(
    app: FastAPI, client: TestClient, clock: Clock
) -> None:
    shop = make_shop(app, "Café Trichter", stamps_required=2, cooldown_seconds=0)
    tokens = [new_card(client) for _ in range(12)]
    first_at = clock()
    for token in tokens:  # 12 first visits
        assert stamp(client, shop, token).status_code == 201
    clock.advance(DAY)
    for token in tokens[:11]:  # 11 second visits; two stamps each: lifetime 3, goal 2 reached
        assert stamp(client, shop, token).status_code == 201
        assert stamp(client, shop, token).status_code == 201  # the same visit
    for token in tokens[:10]:  # 10 first redemptions
        assert redeem(client, shop, token).status_code == 201
    clock.advance(DAY)
    for token in tokens[:5]:  # a third visit, a second reward and redemption: no new step
        assert stamp(client, shop, token).status_code == 201
        assert redeem(client, shop, token).status_code == 201
    row = month_row(kpis(client, shop), first_at)
    assert values(row["steps"]) == {
        "first_visit": 12, "second_visit": 11, "first_reward": 11, "redeemed": 10,
    }  # fmt: skip
    assert row["shares"]["redeemed"]["value"] == 10 / 12
    assert_consistent(app)

    # A card that went every step deletes itself: it leaves every step, and the steps about
    # fewer than 10 cards are hidden.
    assert client.delete(f"/api/v1/cards/{tokens[0]}").status_code == 204
    row = month_row(kpis(client, shop), first_at)
    assert values(row["steps"]) == {
        "first_visit": 11, "second_visit": 10, "first_reward": 10, "redeemed": None,
    }  # fmt: skip
    assert row["steps"]["redeemed"]["reason"] == "fewer-than-k"
    assert row["shares"]["redeemed"] == {
        "value": None, "suppressed": True, "reason": "reveals-a-smaller-figure",
    }  # fmt: skip
    assert_consistent(app)


def test_cards_made_from_the_poster_and_first_visits_by_claim_code_are_counted_per_day(
    app: FastAPI, client: TestClient, clock: Clock
) -> None:
    shop = make_shop(app, "Café Plakat", cooldown_seconds=0)
    for _ in range(11):
        made = client.post(f"/cards/new?shop={shop.slug}", follow_redirects=False)
        assert made.status_code == 303
    assert client.post("/cards/new", follow_redirects=False).status_code == 303  # front page
    claimed = [new_card(client) for _ in range(10)]
    for token in claimed:
        code = client.post("/api/v1/claims", json={}, headers=shop.auth).json()["code"]
        assert client.post(f"/api/v1/claims/{code}", json={"token": token}).status_code == 201
    for token in claimed:  # a second stamp by claim is no arrival
        clock.advance(61)
        code = client.post("/api/v1/claims", json={}, headers=shop.auth).json()["code"]
        assert client.post(f"/api/v1/claims/{code}", json={"token": token}).status_code == 201
    sources = kpis(client, shop)["sources"]
    assert sources["poster"]["current"]["value"] == 11
    assert sources["claim"]["current"]["value"] == 10
    # The daily CSV has a column per source: everything happened on one local day.
    rows = list(csv.DictReader(io.StringIO(client.get("/merchant/exports/daily.csv").text)))
    today = clock().astimezone(VIENNA).date().isoformat()
    (row,) = [r for r in rows if r["day"] == today]
    assert {name: row[name] for name in ("poster", "claim", "new_cards")} == {
        "poster": "11", "claim": "10", "new_cards": "10",
    }  # fmt: skip
    assert_consistent(app)
    # A card deleted after its claim leaves its source; the poster's count is of cards made.
    assert client.delete(f"/api/v1/cards/{claimed[0]}").status_code == 204
    sources = kpis(client, shop)["sources"]
    assert sources["claim"]["current"] == {
        "value": None, "suppressed": True, "reason": "fewer-than-k",
    }  # fmt: skip
    assert sources["poster"]["current"]["value"] == 11
    assert_consistent(app)


def test_printed_older_and_same_day_cards_each_count_once_and_add_up_to_the_new_cards(
    app: FastAPI, client: TestClient, clock: Clock
) -> None:
    """Needs the stamp to pass the card row's `printed` and `created_day` to the projections."""
    shop = make_shop(app, "Café Quelle", cooldown_seconds=0)
    with Session(write_engine(app.state.engine)) as session:
        now, keyring = clock(), app.state.keyring
        printed = [create_card(session=session, keyring=keyring, now=now, printed=True)
                   for _ in range(10)]  # fmt: skip
        older = [create_card(session=session, keyring=keyring, now=now) for _ in range(12)]
        session.commit()
    clock.advance(DAY)
    same_day = [new_card(client) for _ in range(10)]
    for card in [*printed, *older]:
        assert stamp(client, shop, card.token).status_code == 201
    for token in same_day:
        assert stamp(client, shop, token).status_code == 201
    body = kpis(client, shop)
    got = {name: pair["current"]["value"] for name, pair in body["sources"].items()}
    assert got == {"poster": 0, "printed": 10, "claim": 0, "existing": 12, "new": 10}
    assert body["headline"]["new_cards"]["current"]["value"] == 32
    assert_consistent(app)


def test_a_source_hidden_below_k_hides_a_second_one_so_the_new_cards_do_not_give_it_away() -> None:
    from app.analytics.funnel import compute
    from app.analytics.rollups import CLAIM, EXISTING, FIRST_VISIT, NEW, PRINTED

    day = day_number(Clock()().date())
    rows = [(day, FIRST_VISIT, 33), (day, CLAIM, 3), (day, PRINTED, 10), (day, EXISTING, 12),
            (day, NEW, 8)]  # fmt: skip
    shown = compute(rows, period=Period(day - 29, day + 1), k=10)
    current = {name: pair.current for name, pair in shown.sources.items()}
    assert current["claim"].hidden and current["claim"].small
    assert current["new"].hidden and current["new"].small
    assert (current["printed"].value, current["existing"].value) == (10, 12)
    # With only one source below k, the smallest other one is hidden beside it.
    rows = [(day, FIRST_VISIT, 33), (day, CLAIM, 3), (day, PRINTED, 10), (day, EXISTING, 20)]
    current = {
        n: p.current for n, p in compute(rows, period=Period(day, day + 1), k=10).sources.items()
    }
    assert current["claim"].hidden and current["new"].hidden and not current["new"].small
    assert (current["printed"].value, current["existing"].value) == (10, 20)
