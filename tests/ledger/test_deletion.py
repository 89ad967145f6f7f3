"""Deleting a card takes it out of every figure a shop sees, and out of nothing else.

A shop's dashboard after some of its cards were deleted must equal the dashboard of a shop that
saw the same visits without those cards: every segment (new, returning, loyal, at risk,
lapsed), the repeat rate, the cohorts, the trend, the heat map and the devices. Runs on SQLite,
and on PostgreSQL with TREU_TEST_DATABASE_URL.
"""

from dataclasses import asdict, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.analytics.kpis import Dashboard
from app.analytics.service import owner_dashboard
from app.merchants.models import Merchant
from tests.helpers.api import new_card, stamp
from tests.helpers.clock import Clock
from tests.helpers.rollups import assert_consistent
from tests.helpers.shops import Shop, make_shop

# Each kind of card by the days (before "today") of its visits, and the segment it ends in
# (the dashboard's default period: the 30 days up to today; both shops' purchase cycle is set
# to 15 days, so active is a visit in the last 30 days, at risk 30 to 60, lapsed before).
CYCLE_DAYS = 15
KINDS = {
    "lapsed_once": ((200,), "lapsed"),
    "lapsed_twice": ((200, 150), "lapsed"),
    "at_risk": ((45,), "at_risk"),
    "loyal": ((45, 10), "loyal"),
    "returning": ((100, 3), "returning"),
    "new_once": ((5,), "new"),
    "new_twice": ((20, 2), "new"),
}
# How many cards of each kind the shop has, and how many of them are deleted.
CARDS, DELETED = 3, {"lapsed_once": 2, "at_risk": 1, "loyal": 1, "new_once": 2, "new_twice": 1}


def visit_all(
    client: TestClient, clock: Clock, shop: Shop, cards: list[tuple[str, str]], today: datetime
) -> None:
    """Every card's visits, day by day, oldest first (from 10:00 UTC, a second apart)."""
    days = sorted({d for kind, _ in cards for d in KINDS[kind][0]}, reverse=True)
    for day in days:
        clock.now = datetime.combine((today - timedelta(days=day)).date(), time(10), UTC)
        for kind, token in cards:
            if day in KINDS[kind][0]:
                clock.advance(1)
                assert stamp(client, shop, token).status_code == 201


def set_cycle(app: FastAPI, shop: Shop) -> None:
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        merchant.purchase_cycle_days = CYCLE_DAYS
        session.add(merchant)
        session.commit()


def figures(app: FastAPI, shop: Shop, now: datetime) -> Dashboard:
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        return owner_dashboard(session=session, merchant=merchant, now=now, k=1).figures


def segments(board: Dashboard) -> dict[str, Any]:
    return {s.name: s.current.value for s in board.segments}


def comparable(board: Dashboard) -> dict[str, Any]:
    """Every figure, with each device row keyed by its place instead of its id and label."""
    rows = [replace(row, device_id=n, label="") for n, row in enumerate(board.devices)]
    return asdict(replace(board, devices=rows))


def test_deleting_cards_takes_them_out_of_every_segment(
    app: FastAPI, client: TestClient, clock: Clock
) -> None:
    today = clock.now
    shop, reference = make_shop(app, "Café Sonne"), make_shop(app, "Café Spiegel")
    set_cycle(app, shop)
    set_cycle(app, reference)
    cards = [(kind, new_card(client)) for kind in KINDS for _ in range(CARDS)]
    leaving = [
        (kind, token)
        for kind in DELETED
        for token in [t for k, t in cards if k == kind][: DELETED[kind]]
    ]
    staying = [c for c in cards if c not in leaving]
    visit_all(client, clock, shop, cards, today)
    # The reference shop sees the same visits, at the same times, without the leaving cards.
    visit_all(client, clock, reference, [(kind, new_card(client)) for kind, _ in staying], today)
    before = figures(app, shop, today)
    for _, token in leaving:
        assert client.delete(f"/api/v1/cards/{token}").status_code == 204
    after = figures(app, shop, today)
    # Each segment lost exactly the deleted cards that were in it, and nothing else moved.
    lost = {name: 0 for name in segments(before)}
    for kind, _ in leaving:
        lost[KINDS[kind][1]] += 1
    assert segments(after) == {n: v - lost[n] for n, v in segments(before).items()}
    assert lost["lapsed"] and lost["new"] and lost["at_risk"] and lost["loyal"]
    ever = (before.all_cards.current.value, after.all_cards.current.value)
    assert ever == (len(cards), len(staying))
    # The deleted one-visit cards of the period are not counted as repeat visitors.
    repeat = after.headline["repeat_rate"].current.value
    assert repeat == figures(app, reference, today).headline["repeat_rate"].current.value
    assert comparable(after) == comparable(figures(app, reference, today))
    assert_consistent(app)
