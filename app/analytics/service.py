"""Analytics: the queries the dashboard makes, over the rollup tables only (read-only).

The rollups are kept by the ledger in each write's transaction (app.ledger.projections); the
dashboard never reads the ledger itself.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

from sqlalchemy import and_, bindparam, case, func, literal, or_, select
from sqlmodel import Session

from app.analytics import effect, funnel
from app.analytics.exceptions import PeriodError
from app.analytics.kpis import (
    BASELINE_DAYS,
    COHORT_MONTHS,
    BucketCount,
    Cycle,
    Dashboard,
    DayActivity,
    DeviceDay,
    Inputs,
    Money,
    Outstanding,
    Period,
    ProgramDue,
    Window,
    active_cards,
    buckets,
    compute,
    cycle_year,
    purchase_cycle,
    windows_needed,
)
from app.analytics.models import (
    activity_table,
    card_table,
    cohort_table,
    device_table,
    holding_table,
    hour_table,
    visit_table,
    weekday_table,
)
from app.analytics.rollups import (
    ACTIVITY_FIELDS,
    day_date,
    day_number,
    month_of,
    month_start,
    zone,
)
from app.feedback import service as feedback
from app.merchants.models import Device, Merchant, Program

# Money the owner enters is in cents of this currency (merchants have no currency of their own).
CURRENCY = "EUR"
_program = Program.__table__  # type: ignore[attr-defined]
_device = Device.__table__  # type: ignore[attr-defined]
_c = card_table.c


def daily_rows(
    *, session: Session, merchant_id: int, start: date, end: date
) -> list[dict[str, Any]]:
    """Daily aggregates of one merchant for the days start..end (inclusive, merchant-local).

    One dict per day with activity, oldest first: day (date), visits, new_cards, scans, stamps,
    redemptions, voids, rewards_earned. For the CSV export: counts only, no card, no holder.
    """
    lo, hi = day_number(start), day_number(end) + 1
    a = activity_table.c
    activity = session.execute(
        select(
            a.day,
            *(func.sum(a[name]).label(name) for name in ACTIVITY_FIELDS),
        )
        .where(a.merchant_id == merchant_id, a.day >= lo, a.day < hi)
        .group_by(a.day)
    )
    days: dict[int, dict[str, Any]] = {}
    for row in activity:
        days[row.day] = {
            "new_cards": 0,
            **{name: int(getattr(row, name)) for name in ACTIVITY_FIELDS},
        }
    v = visit_table.c
    new = session.execute(
        select(v.day, v.visits).where(
            v.merchant_id == merchant_id, v.day >= lo, v.day < hi, v.gap == 0
        )
    )
    for row in new:
        days.setdefault(row.day, {})["new_cards"] = row.visits
    for day, counts in funnel.daily_sources(
        session=session, merchant_id=merchant_id, lo=lo, hi=hi
    ).items():
        days.setdefault(day, {}).update(counts)
    order = ("visits", "new_cards", "scans", "stamps", "redemptions", "voids", "rewards_earned",
             *funnel.SOURCE_NAMES)  # fmt: skip
    return [
        {"day": day_date(day), **{name: days[day].get(name, 0) for name in order}}
        for day in sorted(days)
    ]


# --- the dashboard ------------------------------------------------------------------------------

PERIODS = {"30d": 30, "90d": 90, "12m": 365}
DEFAULT_PERIOD = "30d"
MAX_CUSTOM_DAYS = 731


def choose_period(*, choice: str, today: date, start: date | None, end: date | None) -> Period:
    """The period the owner asked for, in local days: a preset ending today, or start..end."""
    last = day_number(today)
    if choice in PERIODS:
        return Period(last - PERIODS[choice] + 1, last + 1)
    if choice != "custom":
        raise PeriodError(f"Unknown period {choice!r}: use 30d, 90d, 12m or custom.")
    if start is None or end is None:
        raise PeriodError("A custom period needs a start and an end date.", code="period-dates")
    if start > end:
        raise PeriodError("The period's start comes after its end.", code="period-order")
    first, stop = day_number(start), min(day_number(end), last) + 1
    if first >= stop:
        raise PeriodError("The period lies in the future.", code="period-future")
    if stop - first > MAX_CUSTOM_DAYS:
        raise PeriodError("A period can be at most two years long.", code="period-length")
    return Period(first, stop)


def today_of(merchant: Merchant, now: datetime) -> date:
    """The merchant's local date at that instant."""
    return now.astimezone(zone(merchant.timezone)).date()


@dataclass(frozen=True)
class OwnerDashboard:
    """What the owner sees for a period: the KPIs and the feedback figures."""

    today: date
    period: Period
    figures: Dashboard
    feedback: dict[str, Any]
    way_in: funnel.WayIn
    promotions: list[effect.PromotionEffect]


def owner_dashboard(
    *,
    session: Session,
    merchant: Merchant,
    now: datetime,
    k: int,
    choice: str = DEFAULT_PERIOD,
    start: date | None = None,
    end: date | None = None,
) -> OwnerDashboard:
    """The dashboard (page and KPI API) for the period the owner chose (see choose_period)."""
    today = today_of(merchant, now)
    period = choose_period(choice=choice, today=today, start=start, end=end)
    mine = merchant.id or 0
    return OwnerDashboard(
        today=today,
        period=period,
        figures=dashboard(session=session, merchant=merchant, period=period, k=k),
        feedback=feedback.period_figures(session=session, merchant=merchant, period=period, k=k),
        way_in=funnel.way_in(session=session, merchant_id=mine, period=period, k=k),
        promotions=effect.promotion_effects(session=session, merchant_id=mine, k=k),
    )


def dashboard(*, session: Session, merchant: Merchant, period: Period, k: int) -> Dashboard:
    """Every KPI of the dashboard for one merchant and period (from rollups, never the ledger)."""
    assert merchant.id is not None
    return compute(
        gather(
            session=session, merchant_id=merchant.id, period=period, k=k,
            chosen_cycle=merchant.purchase_cycle_days,
        )
    )  # fmt: skip


def purchase_cycle_of(*, session: Session, merchant: Merchant, today: date, k: int) -> Cycle:
    """The shop's purchase cycle as of today: the owner's, or derived from the year's visits."""
    assert merchant.id is not None
    last = day_number(today)
    year = cycle_year(Period(last, last + 1))
    *_, gaps, active = _gaps(session, merchant.id, year, year, year)
    came_back = _came_back(session, merchant.id, year, active, k)
    return purchase_cycle(gaps, came_back, k, merchant.purchase_cycle_days)


def gather(
    *, session: Session, merchant_id: int, period: Period, k: int, chosen_cycle: int | None = None
) -> Inputs:
    """Read the rollup rows compute() needs: a handful of indexed, grouped queries."""
    previous = period.previous()
    steps = buckets(period)
    shifted = [s.shifted(-period.days) for s in steps]
    periods = (previous, period)
    counted, cards = _step_counts(session, merchant_id, [*shifted, *steps], periods)
    year = cycle_year(period)
    single, previous_single, ever, previous_ever = _card_counts(session, merchant_id, period)
    *gaps, year_gaps, year_cards = _gaps(session, merchant_id, previous, period, year)
    came_back = _came_back(session, merchant_id, year, year_cards, k)
    cycle = purchase_cycle(year_gaps, came_back, k, chosen_cycle)
    # The periods' own distinct cards came with the steps; the rest are near the periods' ends.
    at_ends = windows_needed(period, cycle) - set(cards)
    days, devices = _days_and_devices(
        session, merchant_id, min(previous.start, period.start - BASELINE_DAYS), period.end
    )
    return Inputs(
        period=period,
        k=k,
        windows={**_window_counts(session, merchant_id, at_ends), **cards},
        steps=counted[len(shifted) :],
        previous_steps=counted[: len(shifted)],
        gaps=gaps[1],
        previous_gaps=gaps[0],
        single_visit=single,
        previous_single_visit=previous_single,
        ever=ever,
        previous_ever=previous_ever,
        days=[d for d in days if d.day >= previous.start],
        hours=_hours(session, merchant_id, period),
        weekday_cards=_weekday_cards(session, merchant_id, period),
        devices=devices,
        device_cards=_device_cards(session, merchant_id, period),
        device_labels=_device_labels(session, merchant_id),
        cohorts=_cohorts(session, merchant_id, month_of(period.end - 1) - COHORT_MONTHS + 1),
        outstanding=_outstanding(session, merchant_id),
        cycle=cycle,
        program_dues=_program_dues(session, merchant_id),
        money=_money(session, merchant_id),
    )


def _start_of(day: Any, bounds: Sequence[int]) -> Any:
    """SQL: the first day of the step `day` falls in, for contiguous steps with these bounds.

    A balanced tree of CASEs, so a row costs a handful of comparisons however many steps.
    """
    if len(bounds) == 2:
        return literal(bounds[0])
    middle = len(bounds) // 2
    return case(
        (day < bounds[middle], _start_of(day, bounds[: middle + 1])),
        else_=_start_of(day, bounds[middle:]),
    )


def _step_counts(
    session: Session, merchant_id: int, steps: list[Period], periods: tuple[Period, Period]
) -> tuple[list[BucketCount], dict[Window, int]]:
    """Visits, distinct cards and new cards per step; and each period's distinct cards.

    One grouped pass over the visit rollup, by step and by whether each visit is its card's
    first in the step and in the period (its previous visit lies before their start): a few
    rows per step come back, whatever the number of visits.
    """
    v = visit_table.c
    bounds = [steps[0].start, *(s.end for s in steps)]
    one_day = all(s.days == 1 for s in steps)
    step = v.day if one_day else _start_of(v.day, bounds)
    in_later = v.day >= periods[1].start
    period_start = case((in_later, periods[1].start), else_=periods[0].start)
    first_in_step = (v.gap == 0) | (v.day - v.gap < step)
    first_in_period = (v.gap == 0) | (v.day - v.gap < period_start)
    # Grouped by the output labels: PostgreSQL would not match re-bound expressions.
    labels = ("step_start", "is_new", "first_in_step", "first_in_period")
    columns = (step, v.gap == 0, first_in_step, first_in_period)
    rows = session.execute(
        select(*(c.label(n) for c, n in zip(columns, labels, strict=True)), func.sum(v.visits))
        .where(v.merchant_id == merchant_id, v.day >= bounds[0], v.day < bounds[-1])
        .group_by(*labels)
    ).all()
    per_step: dict[int, list[int]] = {s.start: [0, 0, 0] for s in steps}
    distinct = [0, 0]
    for start, new, first, first_of_period, visits in rows:
        counts = per_step[start]
        counts[0] += visits
        counts[1] += visits if first else 0
        counts[2] += visits if new else 0
        if first_of_period:
            distinct[int(start >= periods[1].start)] += visits
    cards = {active_cards(p.start, p.end): n for p, n in zip(periods, distinct, strict=True)}
    return [BucketCount(*per_step[s.start]) for s in steps], cards


def _gaps(
    session: Session, merchant_id: int, previous: Period, period: Period, year: Period
) -> tuple[dict[int, int], dict[int, int], dict[int, int], int]:
    """Returning visits by days since the card's previous visit, in each period and in the
    year the purchase cycle is derived from; and the distinct cards with a visit in that year.
    One grouped pass: a few rows per gap."""
    v = visit_table.c
    flags = (
        (v.day >= period.start).label("in_period"),
        (v.day >= previous.start).label("in_previous"),
        (v.day >= year.start).label("in_year"),
        ((v.gap == 0) | (v.day - v.gap < year.start)).label("first_in_year"),
    )
    rows = session.execute(
        select(v.gap, *flags, func.sum(v.visits))
        .where(
            v.merchant_id == merchant_id,
            v.day >= min(previous.start, year.start),
            v.day < period.end,
        )
        .group_by(v.gap, *(f.name for f in flags))
    )
    before: dict[int, int] = {}
    now: dict[int, int] = {}
    in_year: dict[int, int] = {}
    cards = 0
    for gap, is_now, is_before, is_year, first, visits in rows:
        n = int(visits)
        if is_year and first:
            cards += n
        if not gap:
            continue
        for hist, counted in (
            (now, is_now),
            (before, is_before and not is_now),
            (in_year, is_year),
        ):
            if counted:
                hist[gap] = hist.get(gap, 0) + n
    return before, now, in_year, cards


# Below every window bound (a previous visit longer ago than any window looks), and the mark of
# a card's first visit.
_LONG_AGO, _FIRST = -(10**9), -(2 * 10**9)


def _window_counts(session: Session, merchant_id: int, windows: set[Window]) -> dict[Window, int]:
    """Each window's count, in one grouped pass over the days the windows span.

    Every bound of every window is a breakpoint: visits are summed by the breakpoint interval
    their day falls in and the one their previous visit falls in (or "first visit"), a few
    hundred rows however many visits; each window is a sum of some of them.
    """
    if not windows:
        return {}
    v = visit_table.c
    points = sorted(
        {b for w in windows for b in (w.lo, w.hi, w.prev_lo, w.prev_hi) if b is not None}
    )
    lo, hi = min(w.lo for w in windows), max(w.hi for w in windows)
    day_at = _start_of(v.day, [p for p in points if lo <= p <= hi])
    prev_at = case((v.gap == 0, _FIRST), else_=_start_of(v.day - v.gap, [_LONG_AGO, *points]))
    rows = session.execute(
        select(day_at.label("day_at"), prev_at.label("prev_at"), func.sum(v.visits))
        .where(v.merchant_id == merchant_id, v.day >= lo, v.day < hi)
        .group_by("day_at", "prev_at")
    ).all()
    out = {}
    for w in windows:
        total = 0
        for day, prev, visits in rows:
            if not w.lo <= day < w.hi:
                continue
            if prev == _FIRST:
                ok = w.first
            else:
                ok = (
                    w.returning
                    and (w.prev_lo is None or prev >= w.prev_lo)
                    and (w.prev_hi is None or prev < w.prev_hi)
                )
            total += int(visits) if ok else 0
        out[w] = total
    return out


def _card_counts(session: Session, merchant_id: int, period: Period) -> tuple[int, int, int, int]:
    """Cards first seen in each period with no second visit by its end; cards seen before each
    period's end.

    Each "once" count is a range of the card rollup's (first_day, second_day) index, counted
    where it lies; the cards seen before a day come from the cohorts' sizes (one row a month)
    and the first visits of the month it falls in: with a ledger of 10 million entries a pass
    over every card row cost more than the rest of the dashboard together.
    """
    s, e = period.start, period.end
    ever, ever_before = _seen_before(session, merchant_id, (e, s))
    once = partial(_once, session, merchant_id)
    return once(s, e), once(period.previous().start, s), ever, ever_before


def _once(session: Session, merchant_id: int, lo: int, hi: int) -> int:
    """Cards first seen in [lo, hi) with no second visit by hi: a range of the card rollup's
    (first_day, second_day) index."""
    c = card_table.c
    found = session.execute(
        select(func.count()).where(
            c.merchant_id == merchant_id, c.first_day >= lo, c.first_day < hi,
            or_(c.second_day.is_(None), c.second_day >= hi),
        )
    ).scalar_one()  # fmt: skip
    return int(found or 0)


def _came_back(session: Session, merchant_id: int, year: Period, active: int, k: int) -> int:
    """Cards that came back in the year (a visit there after an earlier one), or at least k of
    them: what the purchase cycle needs to know. k cards whose last visit lies in the year and
    is not their first are found after a few rows; only a shop with fewer is counted exactly
    (its cards active in the year less those first seen then that did not come back)."""
    c = card_table.c
    quick = (
        select(literal(1))
        .where(
            c.merchant_id == merchant_id, c.second_day.is_not(None), c.second_day < year.end,
            c.last_day >= year.start, c.last_day < year.end,
        )
        .limit(k)
    )  # fmt: skip
    found = int(session.execute(select(func.count()).select_from(quick.subquery())).scalar_one())
    return found if found >= k else active - _once(session, merchant_id, year.start, year.end)


def _seen_before(session: Session, merchant_id: int, days: Sequence[int]) -> list[int]:
    """Cards whose first visit was before each of the days: the cohorts of the months before
    the day's month, and the first visits of its month up to the day."""
    k = cohort_table.c
    sizes = dict(
        session.execute(
            select(k.first_month, k.cards).where(
                k.merchant_id == merchant_id, k.first_month == k.month
            )
        ).all()
    )
    v = visit_table.c
    lo = min(month_start(month_of(d)) for d in days)
    firsts = session.execute(
        select(v.day, v.visits).where(
            v.merchant_id == merchant_id, v.day >= lo, v.day < max(days), v.gap == 0
        )
    ).all()
    out = []
    for d in days:
        month = month_of(d)
        before = sum(int(n) for m, n in sizes.items() if m < month)
        out.append(before + sum(int(n) for day, n in firsts if month_start(month) <= day < d))
    return out


def _days_and_devices(
    session: Session, merchant_id: int, lo: int, hi: int
) -> tuple[list[DayActivity], list[DeviceDay]]:
    """Activity per day, and per device and day, in one pass."""
    a = activity_table.c
    rows = session.execute(
        select(a.day, a.device_id, *(func.sum(a[name]) for name in ACTIVITY_FIELDS))
        .where(a.merchant_id == merchant_id, a.day >= lo, a.day < hi)
        .group_by(a.day, a.device_id)
        .order_by(a.day)
    )
    days: dict[int, list[int]] = {}
    devices = []
    for day, device_id, *sums in rows:
        counts = [int(n) for n in sums]
        total = days.setdefault(day, [0] * len(counts))
        for n, value in enumerate(counts):
            total[n] += value
        scans, stamps, visits, _, voids, _ = counts
        devices.append(DeviceDay(device_id, day, scans, stamps, visits, voids))
    return [DayActivity(day, *counts) for day, counts in days.items()], devices


def _weekday(day: Any) -> Any:
    # Day 0 (1 January 1970) was a Thursday: weekday 3 with Monday as 0 (rollups.weekday_of).
    return ((day + 3) % 7).label("weekday")


def _first_in(table: Any, period: Period) -> Any:
    """SQL: the row counts each card once in the period (its previous one was before it)."""
    t = table.c
    return and_(
        t.merchant_id == bindparam("merchant_id"),
        t.day >= period.start,
        t.day < period.end,
        or_(t.gap == 0, t.day - t.gap < period.start),
    )


def _hours(session: Session, merchant_id: int, period: Period) -> list[tuple[int, int, int, int]]:
    """Visits per weekday and hour in the period, and the distinct cards they are about."""
    a, h = activity_table.c, hour_table.c
    rows = session.execute(
        select(_weekday(a.day), a.hour, func.sum(a.visits))
        .where(a.merchant_id == merchant_id, a.day >= period.start, a.day < period.end)
        .group_by("weekday", a.hour)
    )
    visits = {(int(w), int(hour)): int(n) for w, hour, n in rows}
    rows = session.execute(
        select(_weekday(h.day), h.hour, func.sum(h.visits))
        .where(_first_in(hour_table, period))
        .group_by("weekday", h.hour),
        {"merchant_id": merchant_id},
    )
    cards = {(int(w), int(hour)): int(n) for w, hour, n in rows}
    return [(w, hour, n, cards.get((w, hour), 0)) for (w, hour), n in visits.items()]


def _weekday_cards(session: Session, merchant_id: int, period: Period) -> dict[int, int]:
    """Distinct cards with a visit on each weekday of the period."""
    w = weekday_table.c
    rows = session.execute(
        select(_weekday(w.day), func.sum(w.visits))
        .where(_first_in(weekday_table, period))
        .group_by("weekday"),
        {"merchant_id": merchant_id},
    )
    return {int(weekday): int(n) for weekday, n in rows if n}


def _device_cards(session: Session, merchant_id: int, period: Period) -> dict[int, int]:
    """Distinct cards stamped at each device in the period."""
    d = device_table.c
    rows = session.execute(
        select(d.device_id, func.sum(d.cards))
        .where(_first_in(device_table, period))
        .group_by(d.device_id),
        {"merchant_id": merchant_id},
    )
    return {int(device_id): int(n) for device_id, n in rows if n}


def _device_labels(session: Session, merchant_id: int) -> dict[int, str]:
    rows = session.execute(
        select(_device.c.id, _device.c.label).where(_device.c.merchant_id == merchant_id)
    )
    return {row.id: row.label for row in rows}


def _cohorts(session: Session, merchant_id: int, first_month: int) -> list[tuple[int, int, int]]:
    c = cohort_table.c
    rows = session.execute(
        select(c.first_month, c.month, c.cards).where(
            c.merchant_id == merchant_id, c.first_month >= first_month
        )
    )
    return [(int(f), int(m), int(n)) for f, m, n in rows]


def program_holding(*, session: Session, merchant_id: int, program_id: int) -> tuple[int, int]:
    """How many cards hold stamps in one program now, and how many stamps they hold together
    (what closing the program out books out)."""
    h = holding_table.c
    cards, stamps = session.execute(
        select(
            func.coalesce(func.sum(h.cards), 0), func.coalesce(func.sum(h.cards * h.stamps), 0)
        ).where(h.merchant_id == merchant_id, h.program_id == program_id, h.stamps > 0)
    ).one()
    return int(cards), int(stamps)


def _program_dues(session: Session, merchant_id: int) -> list[ProgramDue]:
    """Rewards due now per program, the cards holding them, and the program's reward value."""
    h, p = holding_table.c, _program.c
    rows = session.execute(
        select(h.program_id, h.stamps, h.cards, p.stamps_required, p.reward_value_cents)
        .select_from(holding_table.join(_program, p.id == h.program_id))
        .where(h.merchant_id == merchant_id, h.cards > 0, h.stamps >= p.stamps_required)
    )
    dues: dict[int, list[Any]] = {}
    for program_id, held, cards, goal, value in rows:
        due = dues.setdefault(program_id, [0, 0, value])
        due[0] += held // goal * cards
        due[1] += cards
    return [ProgramDue(pid, *dues[pid]) for pid in sorted(dues)]


def _money(session: Session, merchant_id: int) -> Money:
    """The average ticket and reward value the owner entered: the mean over the programs (not
    closed) that have one, in cents."""
    p = _program.c
    rows = session.execute(
        select(p.average_ticket_cents, p.reward_value_cents).where(
            p.merchant_id == merchant_id, p.closed_at.is_(None)
        )
    ).all()

    def mean(values: list[int | None]) -> int | None:
        given = [v for v in values if v is not None]
        return round(sum(given) / len(given)) if given else None

    return Money(CURRENCY, mean([r[0] for r in rows]), mean([r[1] for r in rows]))


def _outstanding(session: Session, merchant_id: int) -> Outstanding:
    """Stamps held and rewards due now, with each program's current goal."""
    h, p = holding_table.c, _program.c
    rows = session.execute(
        select(h.stamps, h.cards, p.stamps_required)
        .select_from(holding_table.join(_program, p.id == h.program_id))
        .where(h.merchant_id == merchant_id, h.cards > 0)
    )
    stamps = rewards = holding = due = 0
    for held, cards, goal in rows:
        stamps += held * cards
        rewards += held // goal * cards
        holding += cards
        due += cards if held >= goal else 0
    return Outstanding(stamps, rewards, holding, due)
