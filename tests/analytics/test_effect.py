"""Did the promotion work? As the owner reads it in the KPI API: bonus stamps and budget, and
for a promotion with a hold-out the treated cards against the held-out ones, with a 95 %
interval from statsmodels, or "too small to tell" when either group has fewer than k cards."""

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from statsmodels.stats.proportion import confint_proportions_2indep

from app.analytics.effect import Group, compare
from app.analytics.models import promotion_table
from app.analytics.rollups import day_number
from app.ledger.projections import rebuild_rollups
from tests.helpers.api import new_card, stamp, void
from tests.helpers.clock import Clock
from tests.helpers.loyalty import add_promotion
from tests.helpers.pages import log_in_owner
from tests.helpers.shops import Shop, make_shop

DAY = 86_400


def promotions(client: TestClient, shop: Shop) -> dict[int, dict[str, Any]]:
    if "treu_owner" not in client.cookies:
        log_in_owner(client, shop)
    response = client.get("/api/v1/merchant/kpis?period=30d")
    assert response.status_code == 200, response.text
    return {p["promotion_id"]: p for p in response.json()["promotions"]}


def _rows(
    app: FastAPI, shop: Shop, promotion_id: int, groups: dict[int, tuple[int, int, int]]
) -> None:
    """Each group's (cards entered, visits, returns), half on each of two days (even numbers
    only): the figures are sums over the promotion's days."""
    day = day_number(app.state.clock().date())
    rows = [
        {"merchant_id": shop.merchant_id, "promotion_id": promotion_id, "day": day + i,
         "held_out": held_out, "entered": entered // 2, "visits": visits // 2,
         "returned": returned // 2}
        for held_out, (entered, visits, returned) in groups.items()
        for i in (0, 1)
    ]  # fmt: skip
    with app.state.engine.begin() as conn:
        conn.execute(insert(promotion_table), rows)


def test_treated_against_held_out_with_the_difference_and_its_interval(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    """The read side, from rows as the stamp path writes them (hand-made here)."""
    promotion = add_promotion(app, shop, "campaign", stamps=1, holdout_percent=30)
    assert promotion.id is not None
    # Treated: 40 cards, 100 visits, 30 returns; held out: 20 cards, 40 visits, 8 returns.
    _rows(app, shop, promotion.id, {0: (40, 100, 30), 1: (20, 40, 8)})
    shown = promotions(client, shop)[promotion.id]
    assert shown["too_small"] is False
    assert shown["treated"] == {
        "cards": 40, "visits": 100, "returned": 30, "visits_per_card": 2.5, "return_rate": 0.3,
    }  # fmt: skip
    assert shown["held_out"] == {
        "cards": 20, "visits": 40, "returned": 8, "visits_per_card": 2.0, "return_rate": 0.2,
    }  # fmt: skip
    low, high = confint_proportions_2indep(30, 100, 8, 40, method="newcomb", compare="diff")
    difference = shown["return_rate_difference"]
    assert difference["value"] == pytest.approx(0.1)
    assert (difference["low"], difference["high"]) == pytest.approx((low, high))
    assert difference["low"] < 0 < difference["high"]  # this little data cannot tell
    assert shown["visits_per_card_difference"]["value"] == pytest.approx(0.5)


def test_a_group_below_k_is_too_small_to_tell_and_shows_nothing_of_either_group(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    promotion = add_promotion(app, shop, "campaign", stamps=1, holdout_percent=10)
    assert promotion.id is not None
    _rows(app, shop, promotion.id, {0: (80, 200, 50), 1: (8, 20, 4)})
    shown = promotions(client, shop)[promotion.id]
    assert shown["too_small"] is True
    assert shown["treated"] is None and shown["held_out"] is None
    assert shown["return_rate_difference"] is None
    # A promotion without a hold-out has nothing to compare with.
    plain = add_promotion(app, shop, "welcome", stamps=1)
    assert promotions(client, shop)[plain.id or 0]["too_small"] is None


def test_bonus_stamps_given_against_the_budget(
    app: FastAPI, client: TestClient, clock: Clock
) -> None:
    shop = make_shop(app, "Café Budget", cooldown_seconds=0)
    promotion = add_promotion(app, shop, "campaign", stamps=2, budget=10)
    for _ in range(3):
        assert stamp(client, shop, new_card(client)).json()["bonus"]
    shown = promotions(client, shop)[promotion.id or 0]
    assert (shown["bonus_stamps"], shown["budget"], shown["budget_used"]) == (6, 10, 0.6)


def test_a_hold_out_promotion_through_real_stamps(
    app: FastAPI, client: TestClient, clock: Clock
) -> None:
    """60 cards come during a campaign with half held out; every treated card comes back two
    days later, and only every second held-out one. Needs the stamp path's promotion rollup."""
    shop = make_shop(app, "Café Probe", cooldown_seconds=0)
    promotion = add_promotion(app, shop, "campaign", stamps=1, holdout_percent=50)
    tokens = [new_card(client) for _ in range(60)]
    held = [t for t in tokens if not stamp(client, shop, t).json()["bonus"]]
    treated = [t for t in tokens if t not in held]
    assert len(held) >= 10 and len(treated) >= 10
    clock.advance(2 * DAY)
    back = treated + held[::2]
    for token in back:
        assert stamp(client, shop, token).status_code == 201
    shown = promotions(client, shop)[promotion.id or 0]
    t, h = len(treated), len(held)
    assert shown["treated"] == {
        "cards": t, "visits": 2 * t, "returned": t, "visits_per_card": 2.0, "return_rate": 0.5,
    }  # fmt: skip
    assert shown["held_out"]["cards"] == h
    assert shown["held_out"]["returned"] == len(held[::2])
    assert shown["return_rate_difference"]["value"] == pytest.approx(
        0.5 - len(held[::2]) / (h + len(held[::2]))
    )
    with app.state.engine.begin() as conn:  # the ledger says the same
        kept = sorted(conn.execute(select(promotion_table)).all())
        rebuild_rollups(conn, shop.merchant_id)
        assert sorted(conn.execute(select(promotion_table)).all()) == kept
    # A deleted card leaves its group as if it had never come.
    assert client.delete(f"/api/v1/cards/{treated[0]}").status_code == 204
    shown = promotions(client, shop)[promotion.id or 0]
    assert (shown["treated"]["cards"], shown["treated"]["visits"]) == (t - 1, 2 * (t - 1))


def test_compare_is_too_small_below_k_in_either_group() -> None:
    assert compare(Group(10, 30, 5), Group(10, 12, 1), 10).too_small is False
    assert compare(Group(10, 30, 5), Group(9, 12, 1), 10).too_small is True
    assert compare(Group(9, 30, 5), Group(10, 12, 1), 10).too_small is True


def test_bonus_stamps_of_a_promotion_without_budget_are_counted_and_leave_with_an_undo(
    app: FastAPI, client: TestClient, clock: Clock
) -> None:
    """Double stamps all day: every stamp brings one bonus stamp; an undone stamp takes its
    bonus with it, and a rebuild from the ledger counts the same."""
    shop = make_shop(app, "Café Doppelt", cooldown_seconds=0)
    promotion = add_promotion(app, shop, "multiplier", factor=2)
    answers = [stamp(client, shop, new_card(client)).json() for _ in range(3)]
    assert all(a["bonus"][0]["stamps"] == 1 for a in answers)
    assert void(client, shop, answers[0]["entry_id"]).status_code == 201
    shown = promotions(client, shop)[promotion.id or 0]
    assert (shown["bonus_stamps"], shown["budget"], shown["budget_used"]) == (2, 0, None)
    with app.state.engine.begin() as conn:
        kept = sorted(conn.execute(select(promotion_table)).all())
        rebuild_rollups(conn, shop.merchant_id)
        assert sorted(conn.execute(select(promotion_table)).all()) == kept
    assert promotions(client, shop)[promotion.id or 0]["bonus_stamps"] == 2
