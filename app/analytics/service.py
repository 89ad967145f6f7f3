"""Analytics: the queries the dashboard makes, over the rollup tables only (read-only).

The rollups are kept by the ledger in each write's transaction (app.ledger.projections); the
dashboard never reads the ledger itself.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, func, literal, or_, select
from sqlmodel import Session

from app.analytics.exceptions import PeriodError
from app.analytics.kpis import (
    BASELINE_DAYS,
    COHORT_MONTHS,
    BucketCount,
    Dashboard,
    DayActivity,
    DeviceDay,
    Inputs,
    Outstanding,
    Period,
    Window,
    active_cards,
    buckets,
    compute,
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
from app.analytics.rollups import ACTIVITY_FIELDS, day_date, day_number, month_of, zone
from app.feedback import service as feedback
from app.merchants.models import Device, Merchant, Program

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
    order = ("visits", "new_cards", "scans", "stamps", "redemptions", "voids", "rewards_earned")
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
    return OwnerDashboard(
        today=today,
        period=period,
        figures=dashboard(session=session, merchant=merchant, period=period, k=k),
        feedback=feedback.period_figures(session=session, merchant=merchant, period=period, k=k),
    )


def dashboard(*, session: Session, merchant: Merchant, period: Period, k: int) -> Dashboard:
    """Every KPI of the dashboard for one merchant and period (from rollups, never the ledger)."""
    assert merchant.id is not None
    return compute(gather(session=session, merchant_id=merchant.id, period=period, k=k))


def gather(*, session: Session, merchant_id: int, period: Period, k: int) -> Inputs:
    """Read the rollup rows compute() needs: a handful of indexed, grouped queries."""
    previous = period.previous()
    steps = buckets(period)
    shifted = [s.shifted(-period.days) for s in steps]
    periods = (previous, period)
    counted, cards = _step_counts(session, merchant_id, [*shifted, *steps], periods)
    gaps = _gaps(session, merchant_id, previous, period)
    single, previous_single, ever, previous_ever = _card_counts(session, merchant_id, period)
    # The periods' own distinct cards came with the steps; the rest are near the periods' ends.
    at_ends = windows_needed(period) - set(cards)
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
    session: Session, merchant_id: int, previous: Period, period: Period
) -> tuple[dict[int, int], dict[int, int]]:
    """Returning visits by days since the card's previous visit, in each period."""
    v = visit_table.c
    later = v.day >= period.start
    rows = session.execute(
        select(later.label("in_period"), v.gap, func.sum(v.visits))
        .where(
            v.merchant_id == merchant_id,
            v.day >= previous.start,
            v.day < period.end,
            v.gap > 0,
        )
        .group_by("in_period", v.gap)
    )
    out: tuple[dict[int, int], dict[int, int]] = ({}, {})
    for is_later, gap, visits in rows:
        out[1 if is_later else 0][gap] = int(visits)
    return out


def _window_sql(window: Window) -> Any:
    v = visit_table.c
    prev = v.day - v.gap
    returning = [v.gap > 0]
    if window.prev_lo is not None:
        returning.append(prev >= window.prev_lo)
    if window.prev_hi is not None:
        returning.append(prev < window.prev_hi)
    kinds = []
    if window.first:
        kinds.append(v.gap == 0)
    if window.returning:
        kinds.append(and_(*returning))
    return and_(v.day >= window.lo, v.day < window.hi, or_(*kinds))


def _window_counts(session: Session, merchant_id: int, windows: set[Window]) -> dict[Window, int]:
    """Each window's count, in one pass over the days the windows span."""
    if not windows:
        return {}
    v = visit_table.c
    ordered = sorted(windows, key=lambda w: (w.lo, w.hi, w.prev_lo or 0, w.prev_hi or 0, w.first))
    spans = or_(*[and_(v.day >= w.lo, v.day < w.hi) for w in ordered])
    sums = [func.sum(case((_window_sql(w), v.visits), else_=0)) for w in ordered]
    row = session.execute(select(*sums).where(v.merchant_id == merchant_id, spans)).one()
    return {w: int(n or 0) for w, n in zip(ordered, row, strict=True)}


def _card_counts(session: Session, merchant_id: int, period: Period) -> tuple[int, int, int, int]:
    """Cards first seen in each period with no second visit by its end; cards seen before each
    period's end."""
    c = card_table.c
    s, e = period.start, period.end
    prev_start = period.previous().start

    def once_by(end: int) -> Any:
        return or_(c.second_day.is_(None), c.second_day >= end)

    row = session.execute(
        select(
            func.sum(case((and_(c.first_day >= s, c.first_day < e, once_by(e)), 1), else_=0)),
            func.sum(
                case((and_(c.first_day >= prev_start, c.first_day < s, once_by(s)), 1), else_=0)
            ),
            func.sum(case((c.first_day < e, 1), else_=0)),
            func.sum(case((c.first_day < s, 1), else_=0)),
        ).where(c.merchant_id == merchant_id)
    ).one()
    return tuple(int(n or 0) for n in row)  # type: ignore[return-value]


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
