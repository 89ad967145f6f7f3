"""KPIs from small ledgers computed by hand (pure: no database).

The main story, in UTC, period 1-30 March 2026 (the previous period is 30 Jan - 28 Feb):
  card a: 20 Jan; 3 Mar at 9 and again at 10 (one visit); 11 Mar, and redeems then
  card b:  6 Mar at 14; 7 Mar at 14 (on the other till)
  card c:  9 Feb
  card d: 30 Mar
A reward takes 2 stamps.
"""

from datetime import date, timedelta

import pytest

from app.analytics import kpis
from app.analytics.kpis import Figure, Period, suppress
from app.analytics.rollups import day_number, month_of
from tests.analytics.reference import Event, inputs, rollups

MARCH = date(2026, 3, 1)
STORY = [
    Event("a", date(2026, 1, 20)),
    Event("a", date(2026, 3, 3), hour=9),
    Event("a", date(2026, 3, 3), hour=10),
    Event("a", date(2026, 3, 11)),
    Event("a", date(2026, 3, 11), minute=5, kind="redemption", count=2),
    Event("b", date(2026, 3, 6), hour=14),
    Event("b", date(2026, 3, 7), hour=14, device=2),
    Event("c", date(2026, 2, 9)),
    Event("d", date(2026, 3, 30)),
]


def story(k: int = 1) -> kpis.Dashboard:
    return kpis.compute(inputs(STORY, start=MARCH, days=30, k=k, required=2))


def values(pair: kpis.Pair) -> tuple[float | None, float | None]:
    return pair.current.value, pair.previous.value


def test_headline_figures_of_the_story() -> None:
    d = story()
    h = d.headline
    assert values(h["active_30"]) == (3, 1)  # a, b, d | c
    assert values(h["active_90"]) == (4, 2)  # a, b, c, d | a (20 Jan), c
    assert values(h["cards"]) == (3, 1)
    assert values(h["new_cards"]) == (2, 1)  # b, d | c
    assert values(h["visits"]) == (5, 1)  # a twice, b twice, d | c
    assert values(h["stamps"]) == (6, 1)
    # Cards seen in March that came more than once: a (had come before), b (twice); not d.
    assert h["repeat_rate"].current.value == pytest.approx(2 / 3)
    assert h["repeat_rate"].previous.value == 0  # c came once
    assert h["visits_per_card"].current.value == pytest.approx(5 / 3)
    # Days between visits in March: a 42 (20 Jan to 3 Mar) and 8, b 1: the median is 8.
    assert values(h["median_days_between_visits"]) == (8, None)
    assert h["active_30"].change == 2


def test_lifecycle_segments_at_the_end_of_each_period() -> None:
    d = story()
    sizes = {s.name: (s.current.value, s.previous.value) for s in d.segments}
    assert sizes == {
        "new": (2, 1),  # b, d | c
        "returning": (1, 0),  # a came back after 41 days away | -
        "loyal": (0, 0),
        "at_risk": (1, 1),  # c, last seen 49 days before 31 Mar | a, 40 days before 1 Mar
        "lapsed": (0, 0),
    }
    assert values(d.all_cards) == (4, 2)


def test_loyal_means_a_visit_in_each_of_the_last_two_months() -> None:
    events = [Event("x", MARCH - timedelta(days=20)), Event("x", MARCH + timedelta(days=2))]
    d = kpis.compute(inputs(events, start=MARCH, days=30, k=1))
    sizes = {s.name: s.current.value for s in d.segments}
    assert sizes == {"new": 0, "returning": 0, "loyal": 1, "at_risk": 0, "lapsed": 0}


def test_rewards_earned_redeemed_and_outstanding() -> None:
    d = story()
    # a: 2nd stamp on 3 Mar and 4th on 11 Mar complete a card; b: 2nd stamp on 7 Mar.
    assert values(d.rewards["earned"]) == (3, 0)
    assert values(d.rewards["redeemed"]) == (1, 0)
    assert d.rewards["redemption_rate"].current.value == pytest.approx(1 / 3)
    assert d.rewards["redemption_rate"].previous.value is None  # nothing earned before


def test_cohorts_share_still_visiting_per_month() -> None:
    d = story()
    rows = {
        c.month: (c.size.value, [None if f is None else f.value for f in c.shares[:4]])
        for c in d.cohorts
    }
    jan, feb, mar = (month_of(day_number(date(2026, m, 1))) for m in (1, 2, 3))
    assert rows == {
        jan: (1, [1.0, 0.0, 1.0, None]),  # a: January, not February, March again
        feb: (1, [1.0, 0.0, None, None]),  # c did not come back in March
        mar: (2, [1.0, None, None, None]),  # b and d: April is still to come
    }


def test_busiest_weekdays_and_hours() -> None:
    d = story()
    # Visits in March: Tue 3 at 9, Wed 11 at 9, Fri 6 at 14, Sat 7 at 14, Mon 30 at 9.
    assert [f.value for f in d.weekdays] == [1, 1, 1, 0, 1, 1, 0]
    assert d.hours == list(range(9, 15))
    nine, two_pm = d.hours.index(9), d.hours.index(14)
    assert d.heat[1][nine].value == 1 and d.heat[4][two_pm].value == 1
    assert sum(f.value or 0 for row in d.heat for f in row) == 5


def test_devices_count_scans_and_repeat_scans() -> None:
    d = story()
    till, terrace = d.devices
    # Till: a's three scans (one of them a second scan on 3 Mar), b's first, d's.
    assert (till.scans.value, till.stamps.value, till.repeat_scans.value) == (5, 5, 1)
    assert (terrace.scans.value, terrace.visits.value) == (1, 1)
    assert till.flags == [] and terrace.flags == []


def test_trend_steps_add_up_to_the_period() -> None:
    d = story()
    assert len(d.visit_steps) == 30
    assert sum(s.current.value or 0 for s in d.visit_steps) == 5
    assert [s.end - s.start for s in d.new_steps] == [9, 7, 7, 7]  # weeks ending 30 Mar
    assert [s.current.value for s in d.new_steps] == [1, 0, 0, 1]  # b on 6 Mar, d on 30 Mar
    assert sum(s.previous.value or 0 for s in d.new_steps) == 1


def test_an_undone_stamp_counts_nowhere() -> None:
    undo = Event("e", date(2026, 3, 20), kind="void", voids=len(STORY))
    events = [*STORY, Event("e", date(2026, 3, 20)), undo]
    d = kpis.compute(inputs(events, start=MARCH, days=30, k=1, required=2))
    assert values(d.headline["new_cards"]) == (2, 1)
    assert values(d.headline["visits"]) == (5, 1)
    assert sum(r.voids.value or 0 for r in d.devices) == 1


def test_empty_period() -> None:
    d = kpis.compute(inputs([], start=MARCH, days=30, k=10))
    assert values(d.headline["cards"]) == (0, 0)
    assert values(d.headline["visits"]) == (0, 0)
    # A rate of nothing is not a number, and not a secret either.
    for name in ("repeat_rate", "visits_per_card", "median_days_between_visits"):
        assert d.headline[name].current == Figure(None, hidden=False)
    assert d.cohorts == [] and d.devices == [] and d.hours == []
    assert all(s.current.value == 0 for s in d.segments)


def test_one_card_is_never_shown() -> None:
    d = kpis.compute(inputs(STORY[:4], start=MARCH, days=30, k=10, required=2))
    for name in ("active_30", "cards", "visits", "stamps", "repeat_rate", "visits_per_card"):
        assert d.headline[name].current.hidden, name
        assert d.headline[name].current.value is None
    assert d.headline["active_30"].change is None
    assert all(s.current.hidden or s.current.value == 0 for s in d.segments)
    assert all(f.hidden or f.value == 0 for f in d.weekdays)


# --- suppression ---------------------------------------------------------------------------------


def many(card: str, first: date, visits: int = 1, hour: int = 9) -> list[Event]:
    return [Event(card, first + timedelta(days=n), hour=hour) for n in range(visits)]


def test_k_minus_one_cards_are_hidden_and_k_cards_are_shown() -> None:
    k = 10
    for n, hidden in ((k - 1, True), (k, False)):
        events = [e for i in range(n) for e in many(f"c{i}", MARCH + timedelta(days=3))]
        d = kpis.compute(inputs(events, start=MARCH, days=30, k=k))
        assert d.headline["new_cards"].current.hidden is hidden
        assert d.headline["cards"].current == (Figure(None, True, True) if hidden else Figure(n))


def test_a_hidden_segment_cannot_be_worked_out_from_the_others() -> None:
    """12 new cards, 3 at risk, 20 lapsed at the end of March. 'At risk' is about fewer than 10
    cards; shown beside 'active 90 days' (15) and 'active 30 days' (12) it would be 15 - 12."""
    end = MARCH + timedelta(days=30)
    events = (
        [e for i in range(12) for e in many(f"new{i}", end - timedelta(days=5))]
        + [e for i in range(3) for e in many(f"risk{i}", end - timedelta(days=50))]
        + [e for i in range(20) for e in many(f"gone{i}", end - timedelta(days=200))]
    )
    builder = kpis._Builder(inputs(events, start=MARCH, days=30, k=10))
    d = builder.build()
    seg = {s.name: s.current for s in d.segments}
    assert seg["at_risk"] == Figure(None, hidden=True, small=True)
    # 'Active 30 days' goes too (a headline figure, but the only other member of that sum),
    # then one of the zero segments so that active 30 = new + returning + loyal stays unsolved.
    assert d.headline["active_30"].current == Figure(None, hidden=True, small=False)
    assert seg["loyal"] == Figure(None, hidden=True, small=False)
    assert (seg["new"].value, seg["returning"].value, seg["lapsed"].value) == (12, 0, 20)
    assert d.headline["active_90"].current.value == 15 and d.all_cards.current.value == 35
    # Whatever is shown, no sum has exactly one unknown left.
    hidden = builder.cells.hidden()
    for total, parts in builder.cells.equations:
        assert len({total, *parts} & hidden) != 1, (total, parts)


def test_a_share_hides_when_the_cards_it_leaves_out_are_few() -> None:
    """25 cards came twice and 5 new ones once: the repeat-visit rate (25/30) would show that
    5 cards came only once, so it is hidden, while the 30 cards are shown."""
    k = 10
    events = [e for i in range(25) for e in many(f"twice{i}", MARCH + timedelta(days=2), 2)]
    events += [e for i in range(5) for e in many(f"once{i}", MARCH + timedelta(days=4))]
    d = kpis.compute(inputs(events, start=MARCH, days=30, k=k))
    assert d.headline["cards"].current.value == 30
    assert d.headline["repeat_rate"].current.hidden
    assert d.headline["visits_per_card"].current.value == pytest.approx(55 / 30)


def test_suppress_follows_chains_of_sums() -> None:
    values_ = {"total": 40, "a": 25, "b": 12, "c": 3, "b1": 6, "b2": 6}
    equations = [("total", ["a", "b", "c"]), ("b", ["b1", "b2"])]
    hidden = suppress(values_, {"c", "b1", "b2"}, equations)
    # c alone would be total - a - b: the smaller of a and b (b) goes too. b is then hidden
    # but b1 and b2 are already: that sum still has several unknowns.
    assert hidden == {"c", "b", "b1", "b2"}
    assert suppress(values_, set(), equations) == set()
    # A sum whose parts are all hidden but one: the total goes.
    assert suppress({"t": 20, "x": 20}, {"x"}, [("t", ["x"])]) == {"t", "x"}


def test_cells_sensitivity_boundaries() -> None:
    cells = kpis.Cells(k=10)
    for key, n in (("zero", 0), ("nine", 9), ("ten", 10)):
        cells.add(key, n)
    cells.add("visits", 500, cards=9)
    # Visits of cards deleted since: no card left to count, and not nothing either.
    cells.add("ghosts", 3, cards=0)
    cells.add("nothing", 0, cards=0)
    assert cells.hidden() == {"nine", "visits", "ghosts"}


def test_device_flags_volume_and_repeats() -> None:
    period = Period(100, 130)
    usual = [kpis.DeviceDay(1, day, 20, 20, 20, 0) for day in range(90, 115)]
    burst = kpis.DeviceDay(1, 115, 70, 90, 66, 0)  # 70 scans where 20 are usual
    repeats = kpis.DeviceDay(1, 116, 30, 30, 12, 0)  # 18 of 30 scans stamp a card again
    flags = kpis.device_flags([*usual, burst, repeats], period, usual_repeats=0.05)
    assert [f["reason"] for f in flags] == ["repeats", "volume"]
    assert flags[1] == {"reason": "volume", "day": 115, "scans": 70, "usual": 20}
    # Quiet days say nothing, and a shop where repeat scans are common flags fewer.
    assert kpis.device_flags([*usual, repeats], period, usual_repeats=0.4) == []


def test_median_of_a_histogram() -> None:
    assert kpis.median({}) is None
    assert kpis.median({5: 1}) == 5
    assert kpis.median({1: 1, 8: 1, 42: 1}) == 8
    assert kpis.median({1: 2, 3: 2}) == 2  # 1 1 3 3
    assert kpis.median({2: 3, 100: 1}) == 2


def test_trend_steps_by_period_length() -> None:
    assert len(kpis.buckets(Period(0, 30))) == 30
    weeks = kpis.buckets(Period(0, 90))
    assert weeks[-1] == Period(83, 90) and weeks[0].start == 0
    assert all(w.days == 7 for w in weeks[1:]) and weeks[0].days == 6
    months = kpis.buckets(Period(day_number(date(2025, 11, 24)), day_number(date(2026, 11, 24))))
    # 24-30 Nov is too short a first step: it joins December.
    assert months[0] == Period(day_number(date(2025, 11, 24)), day_number(date(2026, 1, 1)))
    assert months[-1].start == day_number(date(2026, 11, 1)) and len(months) == 12


def test_window_counts_distinct_cards() -> None:
    total, _ = rollups(STORY, required=2)
    rows = [(day, gap, n) for (day, gap), n in total.visits.items()]
    m = day_number(MARCH)
    assert kpis.count(rows, kpis.active_cards(m, m + 30)) == 3
    assert kpis.count(rows, kpis.all_visits(m, m + 30)) == 5
    assert kpis.count(rows, kpis.new_cards(m - 60, m + 30)) == 4
    assert kpis.count(rows, kpis.active_cards(m + 2, m + 3)) == 1  # a, twice on 3 Mar


# --- the heat map and the devices, by distinct cards ---------------------------------------------

# The Mondays of March 2026 (the period of these tests).
MONDAYS = [date(2026, 3, d) for d in (2, 9, 16, 23, 30)]
TUESDAY = date(2026, 3, 3)


def regulars(n: int, hour: int, *, prefix: str = "r", device: int = 1) -> list[Event]:
    """n cards that come every Monday of March at the same hour."""
    return [Event(f"{prefix}{i}", d, hour=hour, device=device) for i in range(n) for d in MONDAYS]


def passers_by(n: int, day: date, hour: int, *, device: int = 1) -> list[Event]:
    """n cards that come once."""
    return [Event(f"p{hour}-{i}", day, hour=hour, device=device) for i in range(n)]


def heat_cell(d: kpis.Dashboard, weekday: int, hour: int) -> Figure:
    return d.heat[weekday][d.hours.index(hour)]


def assert_nothing_can_be_worked_out(builder: kpis._Builder) -> None:
    hidden = builder.cells.hidden()
    for total, parts in builder.cells.equations:
        assert len({total, *parts} & hidden) != 1, (total, parts)


def test_regulars_at_one_hour_are_hidden_however_often_they_come() -> None:
    """9 regulars every Monday at 8 make 45 visits: still a figure about 9 cards."""
    k = 10
    events = regulars(k - 1, 8) + passers_by(12, TUESDAY, 10)
    builder = kpis._Builder(inputs(events, start=MARCH, days=30, k=k))
    d = builder.build()
    assert d.headline["visits"].current.value == 45 + 12  # 21 cards: the period is shown
    assert heat_cell(d, 0, 8) == Figure(None, hidden=True, small=True)
    # All of Monday's visits are those 45: the weekday bar would give them away.
    assert d.weekdays[0] == Figure(None, hidden=True, small=True)
    assert heat_cell(d, 1, 10).value == 12 and not heat_cell(d, 1, 10).hidden
    # The period's visits are the weekdays' sum: one more weekday goes, or Monday is 57 - 12.
    assert sum(f.hidden for f in d.weekdays) >= 2
    assert_nothing_can_be_worked_out(builder)


def test_k_cards_at_one_hour_are_shown() -> None:
    k = 10
    d = kpis.compute(inputs(regulars(k, 8), start=MARCH, days=30, k=k))
    assert heat_cell(d, 0, 8) == Figure(5 * k)
    assert d.weekdays[0] == Figure(5 * k)
    # Few visits by many cards are shown as well: each passer-by is one of k.
    d = kpis.compute(inputs(passers_by(k, TUESDAY, 10), start=MARCH, days=30, k=k))
    assert heat_cell(d, 1, 10) == Figure(k)


def test_cards_of_a_weekday_are_counted_across_its_hours() -> None:
    """6 cards at 8 and the same 6 at 9 another Monday: 12 visits on Monday, by 6 cards."""
    k = 10
    events = regulars(6, 8) + [
        Event(f"r{i}", MONDAYS[0], hour=9) for i in range(6)  # a second scan: same visit at 8
    ] + [Event(f"r{i}", date(2026, 3, 16), hour=9, minute=30) for i in range(6)]  # fmt: skip
    events += passers_by(k, TUESDAY, 10)
    d = kpis.compute(inputs(events, start=MARCH, days=30, k=k))
    assert d.weekdays[0] == Figure(None, hidden=True, small=True)
    assert d.weekdays[1] == Figure(k)


def test_a_hidden_hour_cannot_be_worked_out_from_its_weekday() -> None:
    """Monday: 12 passers-by at 8 and 3 regulars at 9 (15 visits). Monday's total is about 15
    cards and the 8 o'clock cell about 12, but both shown would give 9 o'clock as 27 - 12."""
    k = 10
    events = passers_by(12, MONDAYS[1], 8) + regulars(3, 9) + passers_by(20, TUESDAY, 9)
    builder = kpis._Builder(inputs(events, start=MARCH, days=30, k=k))
    d = builder.build()
    assert d.hours == [8, 9]
    assert heat_cell(d, 0, 9) == Figure(None, hidden=True, small=True)
    assert heat_cell(d, 0, 8) == Figure(None, hidden=True, small=False)  # for 9 o'clock's sake
    assert d.weekdays[0] == Figure(27)
    assert heat_cell(d, 1, 9) == Figure(20) and d.headline["visits"].current == Figure(47)
    assert_nothing_can_be_worked_out(builder)


def test_a_device_used_by_few_cards_is_hidden_however_often_it_scans() -> None:
    """The terrace till stamped 4 regulars every Monday (20 scans); the counter 15 cards, the
    bar 12."""
    k = 10
    events = regulars(4, 8, device=3) + passers_by(15, TUESDAY, 10, device=1)
    events += passers_by(12, TUESDAY, 11, device=2)
    # One of the counter's cards also came to the terrace, once: the terrace has 5 cards.
    events.append(Event("p10-0", date(2026, 3, 4), hour=11, device=3))
    builder = kpis._Builder(inputs(events, start=MARCH, days=30, k=k))
    d = builder.build()
    counter, bar, terrace = d.devices
    assert (counter.cards.value, counter.scans.value, counter.visits.value) == (15, 15, 15)
    assert terrace.cards == Figure(None, hidden=True, small=True)
    assert terrace.scans.hidden and terrace.visits.hidden and terrace.repeat_scans.hidden
    # The devices' visits add up to the period's: the smaller other device goes too, or the
    # terrace's 21 visits would be the period's 48 less 15 and 12.
    assert bar.cards == Figure(None, hidden=True, small=False) and bar.scans.hidden
    assert d.headline["visits"].current == Figure(48)
    assert_nothing_can_be_worked_out(builder)
    # With k cards at the terrace, every device is shown.
    events += regulars(6, 8, prefix="t", device=3)
    d = kpis.compute(inputs(events, start=MARCH, days=30, k=k))
    assert [r.cards.value for r in d.devices] == [15, 12, 11]


def test_a_hidden_device_keeps_its_flag_without_figures() -> None:
    """One card stamped 30 times in an afternoon at the back-office till: staff stamping their
    own card. The flag must show; its scan count, about one card, must not."""
    k = 10
    events = [e for day in MONDAYS for e in passers_by(15, day, 10, device=1)]
    events += [Event("staff", TUESDAY, hour=15, device=2, minute=m) for m in range(30)]
    d = kpis.compute(inputs(events, start=MARCH, days=30, k=k))
    back_office = d.devices[1]
    assert back_office.cards == Figure(None, hidden=True, small=True)
    assert back_office.flags == [{"reason": "repeats", "day": day_number(TUESDAY)}]


def test_a_device_counts_cards_stamped_there_not_only_first_scans() -> None:
    """10 cards are scanned first at the counter, then again at the terrace the same day: the
    terrace has no visit of its own, but 10 cards (and 10 repeat scans)."""
    k = 10
    events = passers_by(k, TUESDAY, 10, device=1)
    events += [Event(e.card, e.day, hour=11, device=2) for e in events]
    d = kpis.compute(inputs(events, start=MARCH, days=30, k=k))
    counter, terrace = d.devices
    assert (terrace.cards.value, terrace.visits.value, terrace.repeat_scans.value) == (k, 0, k)
    assert counter.cards.value == k


def test_a_few_undone_stamps_at_a_device_are_hidden() -> None:
    k = 10
    events = passers_by(12, TUESDAY, 10)
    undo = [Event("p10-0", TUESDAY, hour=10, minute=2, kind="void", voids=0)]
    d = kpis.compute(inputs(events + undo, start=MARCH, days=30, k=k))
    (counter,) = d.devices
    assert counter.cards.value == 11 and counter.scans.value == 11
    assert counter.voids == Figure(None, hidden=True, small=True)
    many = [Event(f"p10-{i}", TUESDAY, hour=10, minute=2, kind="void", voids=i) for i in range(k)]
    events += passers_by(12, date(2026, 3, 5), 12)
    d = kpis.compute(inputs(events + many, start=MARCH, days=30, k=k))
    assert d.devices[0].voids.value == k
