"""Retention, churn and the purchase cycle on a ledger small enough to count by hand.

40 cards, UTC, period 1-30 March 2026 (the previous period is 30 January - 28 February):
  20 regulars   10 January, 10 February, 10 March
  10 gone       12 January, 15 February (and not since)
  10 new        20 March
With the purchase cycle set to 15 days a card is active while its last visit is less than 30
days ago (two cycles; the period is 30 days long, so the window is 30 days):
  active at 1 March (a visit 30 Jan - 28 Feb): regulars and gone, 30
  active at 31 March (a visit 1 - 30 March): regulars and new, 30; new in March: 10
  retention = (30 - 10) / 30 = 66.7 %; churn = the 10 gone / 30 = 33.3 %
  before: active at 30 Jan (31 Dec - 29 Jan) 30, at 1 Mar 30, no new card, nobody lost:
  retention 100 %, churn 0 %.
"""

from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from app.analytics import kpis
from app.analytics.kpis import Figure
from app.analytics.rollups import day_number
from tests.analytics.reference import Event, inputs
from tests.helpers.api import new_card, stamp
from tests.helpers.clock import Clock
from tests.helpers.pages import log_in
from tests.helpers.shops import Shop

MARCH = date(2026, 3, 1)
REGULAR_DAYS = (date(2026, 1, 10), date(2026, 2, 10), date(2026, 3, 10))
GONE_DAYS = (date(2026, 1, 12), date(2026, 2, 15))
NEW_DAYS = (date(2026, 3, 20),)
GROUPS = {"regular": (20, REGULAR_DAYS), "gone": (10, GONE_DAYS), "new": (10, NEW_DAYS)}


def events(sizes: dict[str, int] | None = None) -> list[Event]:
    sizes = sizes or {}
    return [
        Event(f"{name}{n}", day)
        for name, (size, days) in GROUPS.items()
        for n in range(sizes.get(name, size))
        for day in days
    ]


def march(k: int = 10, cycle: int | None = 15, **sizes: int) -> kpis.Dashboard:
    return kpis.compute(inputs(events(sizes), start=MARCH, days=30, k=k, cycle=cycle))


def values(pair: kpis.Pair) -> tuple[float | None, float | None]:
    return pair.current.value, pair.previous.value


def test_retention_and_churn_of_the_period_and_the_one_before() -> None:
    d = march()
    r = d.retention
    assert values(r["active_start"]) == (30, 30)
    assert values(r["active_end"]) == (30, 30)
    assert values(r["new"]) == (10, 0)
    assert values(r["lost"]) == (10, 0)
    assert d.headline["retention_rate"].current.value == pytest.approx(20 / 30)
    assert d.headline["retention_rate"].previous.value == 1
    assert d.headline["churn_rate"].current.value == pytest.approx(10 / 30)
    assert d.headline["churn_rate"].previous.value == 0
    assert d.headline["churn_rate"].change == pytest.approx(10 / 30)


def test_the_cycle_is_the_median_gap_and_moves_the_windows() -> None:
    """Gaps: regulars 31 and 28 days (20 each), gone 34 (10): the median of the 50 is 31. Two
    cycles, 62 days: the gone cards (last seen 15 Feb, 44 days before 31 March) are still active,
    so nobody is lost yet; the new cards are all that is not kept."""
    d = march(cycle=None)
    assert d.cycle == kpis.Cycle(31, derived=31, chosen=None)
    assert d.cycle.source == "derived" and d.cycle.active_days == 62
    assert values(d.retention["active_end"]) == (40, 30)
    assert d.headline["retention_rate"].current.value == 1  # (40 - 10) / 30
    assert d.headline["churn_rate"].current.value == 0
    segments = {s.name: s.current.value for s in d.segments}
    # Active: a visit in the last 62 days; at risk 62 to 124 days; lapsed after that. Loyal: a
    # visit in the 62 days and one in the 62 before (regulars 10 Feb after 10 Jan, gone 15 Feb
    # after 12 Jan).
    assert segments == {"new": 10, "returning": 0, "loyal": 30, "at_risk": 0, "lapsed": 0}


def test_at_risk_and_lapsed_follow_the_cycle_not_30_and_90_days() -> None:
    """A hairdresser: 12 cards every 40 days, the last visit 70 days before the end of March.
    With fixed windows (30/90 days) they were 'at risk'; with their own cycle of 40 days they
    are still active (less than 80 days)."""
    end = MARCH + timedelta(days=30)
    last = end - timedelta(days=70)
    regulars = [Event(f"h{n}", last - timedelta(days=40 * i)) for n in range(12) for i in range(4)]
    d = kpis.compute(inputs(regulars, start=MARCH, days=30, k=10, cycle=None))
    assert d.cycle.days == 40
    sizes = {s.name: s.current.value for s in d.segments}
    assert sizes["at_risk"] == 0 and sizes["lapsed"] == 0
    assert sizes["new"] + sizes["returning"] + sizes["loyal"] == 12
    fixed = kpis.compute(inputs(regulars, start=MARCH, days=30, k=10, cycle=15))
    assert {s.name: s.current.value for s in fixed.segments}["lapsed"] == 12


def test_too_few_returning_cards_keep_the_default_cycle() -> None:
    """9 cards came back (fewer than k = 10): their median gap is not shown or used."""
    d = kpis.compute(
        inputs(events({"regular": 9, "gone": 0, "new": 0}), start=MARCH, days=30, k=10, cycle=None)
    )
    assert d.cycle == kpis.Cycle(kpis.DEFAULT_CYCLE_DAYS)
    assert d.cycle.source == "default"


def test_the_owners_cycle_wins_over_the_derived_one() -> None:
    # 40 gaps: the median is the mean of the middle two, 29.5, rounded up.
    cycle = kpis.purchase_cycle({28: 20, 31: 20}, returning_cards=20, k=10, chosen=60)
    assert (cycle.days, cycle.derived, cycle.source) == (60, 30, "set")
    # Bounds: a week at least, half a year at most.
    assert kpis.purchase_cycle({1: 50}, 50, 10).days == kpis.MIN_CYCLE_DAYS
    assert kpis.purchase_cycle({400: 50}, 50, 10).days == kpis.MAX_CYCLE_DAYS


def test_a_rate_is_hidden_when_a_count_behind_it_is_below_k() -> None:
    # k = 11: the 10 new and the 10 lost cards are fewer than k.
    d = march(k=11)
    assert d.headline["retention_rate"].current == Figure(None, hidden=True)
    assert d.headline["churn_rate"].current == Figure(None, hidden=True)
    assert d.retention["lost"].current == Figure(None, hidden=True, small=True)
    # The period before had 30 cards at each end, nobody new and nobody lost: shown.
    assert d.headline["retention_rate"].previous.value == 1
    assert d.headline["churn_rate"].previous.value == 0


def test_few_kept_cards_cannot_be_worked_out_from_the_counts() -> None:
    """Only 5 regulars come back in March: 'kept' (active at the end less new) is 5 cards. The
    rate is hidden, and so is one of active-at-the-end and new, which would give it away."""
    only = [e for e in events() if not (e.card.startswith("regular") and e.day.month == 3)]
    back = [Event(f"regular{n}", date(2026, 3, 10)) for n in range(5)]
    d = kpis.compute(inputs(only + back, start=MARCH, days=30, k=10, cycle=15))
    assert d.headline["retention_rate"].current.hidden
    end, new = d.retention["active_end"].current, d.retention["new"].current
    assert end.hidden or new.hidden
    assert d.retention["active_start"].current.value == 30
    # 25 lost of 30 at the start would tell the 5 that stayed: the churn rate goes too.
    assert d.headline["churn_rate"].current.hidden
    assert d.retention["lost"].current.hidden


def test_quarters_over_quarters() -> None:
    d = march()
    q = d.quarters
    assert [(kpis.Period(r.start, r.end)) for r in q][-1] == kpis.Period(
        day_number(date(2026, 1, 1)), day_number(date(2026, 3, 31))
    )
    # The period ends on 30 March: the first quarter so far, the shop's first (the four before
    # it had no card at all and are left out).
    assert len(q) == 1 and q[-1].partial
    first_quarter = q[-1]
    # Window: the quarter's 89 days. Active at 1 Jan: none; at 31 Mar (1 Jan - 30 Mar): all 40.
    assert (first_quarter.active_start.value, first_quarter.active_end.value) == (0, 40)
    assert first_quarter.new.value == 40
    assert first_quarter.retention_rate == Figure(None)  # nobody to keep: not a number
    # A period ending mid-quarter: the quarter so far is marked partial.
    mid = kpis.compute(inputs(events(), start=date(2026, 2, 14), days=30, k=10))
    assert mid.quarters[-1].partial and mid.quarters[-1].end == day_number(date(2026, 3, 16))


def test_a_hidden_month_of_new_cards_cannot_be_worked_out_from_its_quarter() -> None:
    """9 new cards in January (a cohort hidden below k), 20 in February and March together:
    the quarter's 29 new cards would give January away. One more month hides with it."""
    jan = [Event(f"j{n}", date(2026, 1, 5)) for n in range(9)]
    feb = [Event(f"f{n}", date(2026, 2, 5)) for n in range(10)]
    mar = [Event(f"m{n}", date(2026, 3, 5)) for n in range(10)]
    builder = kpis._Builder(inputs(jan + feb + mar, start=MARCH, days=30, k=10))
    d = builder.build()
    cohorts = {c.month: c.size for c in d.cohorts}
    assert [f.hidden for f in cohorts.values()].count(True) >= 2
    assert d.quarters[-1].new.value == 29
    hidden = builder.cells.hidden()
    for total, parts in builder.cells.equations:
        assert len({total, *parts} & hidden) != 1, (total, parts)


# --- through the KPI API, on the database -------------------------------------------------------


def _story(client: TestClient, clock: Clock, shop: Shop) -> dict[str, list[str]]:
    """The story's 40 cards, stamped at the shop's till on their days (at 9:00 UTC)."""
    cards = {name: [new_card(client) for _ in range(size)] for name, (size, _) in GROUPS.items()}
    visits = sorted(
        (day, token) for name, (_, days) in GROUPS.items() for token in cards[name] for day in days
    )
    for day, token in visits:
        clock.now = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9)
        assert stamp(client, shop, token).status_code == 201
    clock.now = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)
    return cards


def _march(client: TestClient) -> dict[str, object]:
    response = client.get("/api/v1/merchant/kpis?start=2026-03-01&end=2026-03-30")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_the_kpi_api_gives_retention_and_churn_in_percent(
    client: TestClient, clock: Clock, shop: Shop
) -> None:
    clock.now = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    cards = _story(client, clock, shop)
    log_in(client, shop.owner_email, shop.owner_password)
    set_cycle = client.put("/api/v1/merchant/analytics/settings", json={"purchase_cycle_days": 15})
    assert set_cycle.status_code == 200, set_cycle.text
    body = _march(client)
    headline = body["headline"]
    assert isinstance(headline, dict)
    assert headline["retention_rate"]["current"]["value"] == pytest.approx(200 / 3)
    assert headline["retention_rate"]["previous"]["value"] == 100
    assert headline["churn_rate"]["current"]["value"] == pytest.approx(100 / 3)
    assert "clv" not in headline  # no average ticket entered
    assert body["purchase_cycle"] == {
        "days": 15, "source": "set", "derived_days": 31, "set_days": 15, "active_days": 30,
        "lapsed_after_days": 60,
    }  # fmt: skip
    retention = body["retention"]
    assert isinstance(retention, dict)
    assert retention["lost"]["current"]["value"] == 10
    assert body["money"] is None and body["getting_started"] is False

    # A deleted card leaves every figure. A regular fewer: 29 at the start and the end, 19 kept.
    assert client.delete(f"/api/v1/cards/{cards['regular'][0]}").status_code == 204
    body = _march(client)
    headline, retention = body["headline"], body["retention"]
    assert isinstance(headline, dict) and isinstance(retention, dict)
    assert retention["active_start"]["current"]["value"] == 29
    assert headline["retention_rate"]["current"]["value"] == pytest.approx(1900 / 29)
    assert headline["churn_rate"]["current"]["value"] == pytest.approx(1000 / 29)
    # One of the gone cards fewer: 9 lost cards, fewer than k, so the churn rate is hidden.
    assert client.delete(f"/api/v1/cards/{cards['gone'][0]}").status_code == 204
    body = _march(client)
    headline, retention = body["headline"], body["retention"]
    assert isinstance(headline, dict) and isinstance(retention, dict)
    assert retention["active_start"]["current"]["value"] == 28
    assert retention["lost"]["current"] == {
        "value": None, "suppressed": True, "reason": "fewer-than-k"
    }  # fmt: skip
    assert headline["churn_rate"]["current"]["suppressed"] is True


def test_the_owner_sets_and_clears_the_purchase_cycle(
    client: TestClient, clock: Clock, shop: Shop
) -> None:
    clock.now = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    _story(client, clock, shop)
    assert client.get("/api/v1/merchant/analytics/settings").status_code == 401
    log_in(client, shop.owner_email, shop.owner_password)
    got = client.get("/api/v1/merchant/analytics/settings").json()
    # As of 2 April: the year's gaps are the story's, median 31 days.
    assert got["purchase_cycle"]["source"] == "derived" and got["purchase_cycle"]["days"] == 31
    assert got["currency"] == "EUR"
    assert [p["average_ticket_cents"] for p in got["programs"]] == [None]
    url = "/api/v1/merchant/analytics/settings"
    assert client.put(url, json={"purchase_cycle_days": 42}).json()["purchase_cycle"]["days"] == 42
    # Leaving it out keeps it; null derives it again.
    assert client.put(url, json={}).json()["purchase_cycle"]["set_days"] == 42
    cleared = client.put(url, json={"purchase_cycle_days": None}).json()["purchase_cycle"]
    assert (cleared["days"], cleared["source"]) == (31, "derived")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"purchase_cycle_days": 3}, 422),
        ({"purchase_cycle_days": "often"}, 422),
        ({"programs": [{"id": 999, "average_ticket_cents": 350}]}, 404),
        ({"programs": [{"id": 1, "average_ticket_cents": -1}]}, 422),
        ({"colour": "red"}, 422),
    ],
)
def test_bad_settings_are_a_problem_not_a_500(
    client: TestClient, shop: Shop, body: dict[str, object], status: int
) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    response = client.put("/api/v1/merchant/analytics/settings", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    # Not JSON: refused before anything is read.
    form = client.put("/api/v1/merchant/analytics/settings", data={"purchase_cycle_days": "20"})
    assert form.status_code == 415


def test_quarter_over_quarter_with_a_quarter_lost() -> None:
    """12 more cards came only on 5 November 2025. The fourth quarter of 2025: nobody active at
    its start, 12 new. The first of 2026 so far (89 days, the window): the 12 active at its start
    are all lost, and none of the 40 active at its end is from before: retention 0, churn 100 %."""
    autumn = [Event(f"autumn{n}", date(2025, 11, 5)) for n in range(12)]
    d = kpis.compute(inputs(autumn + events(), start=MARCH, days=30, k=10))
    q4, q1 = d.quarters
    assert (q4.start, q4.end, q4.partial) == (
        day_number(date(2025, 10, 1)), day_number(date(2026, 1, 1)), False
    )  # fmt: skip
    assert (q4.active_start.value, q4.active_end.value, q4.new.value) == (0, 12, 12)
    assert q4.retention_rate == Figure(None) and q4.churn_rate == Figure(None)
    assert (q1.active_start.value, q1.active_end.value, q1.new.value) == (12, 40, 40)
    assert (q1.lost.value, q1.retention_rate.value, q1.churn_rate.value) == (12, 0, 1)
