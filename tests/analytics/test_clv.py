"""Lifetime value, reward cost, net effect and the liability's value, from what the owner enters.

The story of test_retention (40 cards, period 1-30 March 2026, purchase cycle 15 days), with a
reward at 3 stamps: the 20 regulars earn one on 10 March and 10 of them redeem it then. The
owner says a visit brings 4.00 € and a reward costs 3.00 €. In March:
  visits 30 (20 regulars, 10 new) by 30 cards: 30 x 365 / (30 x 30) = 12.17 visits per year
  churn 10 / 30 per 30 days: a year's churn 1 - (2/3)^(365/30), lifetime 1 / that
  reward cost 3.00 x 10 = 30.00; net effect 4.00 x (30 visits - 10 first visits) - 30 = 50.00
Before: 30 visits by 30 cards, nobody lost (no lifetime to estimate), nothing redeemed, 120.00.
"""

from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from app.analytics import kpis
from app.analytics.kpis import Figure
from tests.analytics.reference import Event, inputs
from tests.analytics.test_retention import MARCH, _story, events
from tests.helpers.api import redeem
from tests.helpers.clock import Clock
from tests.helpers.pages import HTML, form_token, log_in
from tests.helpers.shops import Shop

TICKET, REWARD = 400, 300


def story(k: int = 10, **more: object) -> kpis.Dashboard:
    redeemed = [
        Event(f"regular{n}", date(2026, 3, 10), minute=5, kind="redemption", count=3)
        for n in range(10)
    ]
    money = kpis.Money(average_ticket=TICKET, reward_value=REWARD)
    return kpis.compute(
        inputs(events() + redeemed, start=MARCH, days=30, k=k, required=3, money=money, **more)
    )


def test_lifetime_value_reward_cost_and_net_effect() -> None:
    d = story()
    per_year = 30 * 365 / (30 * 30)
    lifetime = 1 / (1 - (2 / 3) ** (365 / 30))
    assert d.money["visits_per_year"].current.value == pytest.approx(per_year)
    assert d.money["lifetime_years"].current.value == pytest.approx(lifetime)
    assert d.headline["clv"].current.value == pytest.approx(4 * per_year * lifetime, abs=0.01)
    assert d.money["reward_cost"].current.value == 30
    assert d.money["net_effect"].current.value == 50
    # Before: nobody was lost, so no lifetime can be estimated (not a secret: nothing to show).
    assert d.headline["clv"].previous == Figure(None)
    assert d.money["reward_cost"].previous.value == 0
    assert d.money["net_effect"].previous.value == 120
    # Redeemed per earned in the period: 10 of 20.
    assert d.rewards["redemption_rate"].current.value == 0.5


def test_no_average_ticket_no_estimates() -> None:
    d = kpis.compute(inputs(events(), start=MARCH, days=30, k=10))
    assert "clv" not in d.headline and d.money == {}


def test_estimates_on_hidden_counts_are_hidden() -> None:
    # k = 11: 10 lost cards and 10 redemptions are fewer than k.
    d = story(k=11)
    assert d.headline["clv"].current == Figure(None, hidden=True)
    assert d.money["lifetime_years"].current.hidden
    assert d.money["reward_cost"].current.hidden
    assert d.money["net_effect"].current.hidden


def test_the_liability_at_the_entered_reward_values() -> None:
    one = [kpis.ProgramDue(1, rewards=12, cards=11, reward_value=REWARD)]
    assert story(program_dues=one).outstanding["value"].value == 36
    # Two programs: the value would tell how the rewards due split; 4 cards are too few.
    two = [*one, kpis.ProgramDue(2, rewards=4, cards=4, reward_value=500)]
    assert story(program_dues=two).outstanding["value"].hidden
    # A program with rewards due and no value entered: no value to show, nothing hidden.
    bare = [*one, kpis.ProgramDue(2, rewards=12, cards=11)]
    assert story(program_dues=bare).outstanding["value"] == Figure(None)


# --- the owner's form and the KPI API, on the database ------------------------------------------


def test_the_owner_enters_the_numbers_and_the_api_shows_the_estimates(
    client: TestClient, clock: Clock, shop: Shop
) -> None:
    clock.now = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    cards = _story(client, clock, shop)
    log_in(client, shop.owner_email, shop.owner_password)
    page = client.get("/merchant/dashboard", headers=HTML)
    assert 'id="numbers"' in page.text
    token = form_token(page.text)
    bad = client.post(
        "/merchant/dashboard/numbers",
        data={"csrf_token": token, "cycle": "15", f"ticket-{shop.program_id}": "four"},
        headers=HTML,
        follow_redirects=False,
    )
    assert bad.status_code == 422 and "cannot be saved" in bad.text
    saved = client.post(
        "/merchant/dashboard/numbers",
        data={
            "csrf_token": token, "cycle": "15", f"ticket-{shop.program_id}": "4,00",
            f"reward-{shop.program_id}": "12",
        },
        headers=HTML, follow_redirects=False,
    )  # fmt: skip
    assert saved.status_code == 303, saved.text
    settings = client.get("/api/v1/merchant/analytics/settings").json()
    assert settings["programs"][0]["average_ticket_cents"] == 400
    assert settings["programs"][0]["reward_value_cents"] == 1200
    assert settings["purchase_cycle"]["set_days"] == 15
    body = client.get("/api/v1/merchant/kpis?start=2026-03-01&end=2026-03-30").json()
    money = body["money"]
    assert (money["estimate"], money["currency"], money["average_ticket"]) == (True, "EUR", 4)
    per_year, lifetime = 30 * 365 / 900, 1 / (1 - (2 / 3) ** (365 / 30))
    clv = body["headline"]["clv"]["current"]["value"]
    assert clv == pytest.approx(4 * per_year * lifetime, abs=0.01)
    assert money["net_effect"]["current"]["value"] == 80  # 4.00 x 20 returning visits, no reward
    # Rewards due now are worth the entered value: 10 stamps make a reward (the test shop's
    # goal); nobody has one, so the value is 0.
    assert body["outstanding"]["value"] == {"value": 0, "suppressed": False, "reason": None}
    assert redeem(client, shop, cards["regular"][0]).status_code == 409
