"""Test helpers: a small ledger written by hand → rollups (the real, pure replay) → KPI inputs.

`inputs()` is the plain-Python reading of rollups that app.analytics.service.gather() does in SQL;
test_service.py holds the two equal on a database, test_kpis.py feeds hand-made ledgers through it.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from app.analytics import kpis
from app.analytics.rollups import (
    CardState,
    Entry,
    Rollups,
    day_number,
    month_of,
    replay,
    weekday_of,
)

UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Event:
    """One ledger entry of a hand-written history: card, local date and hour, what happened."""

    card: str
    day: date
    hour: int = 9
    kind: str = "stamp"
    count: int = 1
    device: int = 1
    minute: int = 0
    voids: int | None = None  # index (in the event list) of the entry this one undoes


def ledger(events: Iterable[Event], program_id: int = 1) -> dict[str, list[Entry]]:
    """The events as ledger entries, per card (entry ids are the events' positions)."""
    cards: dict[str, list[Entry]] = defaultdict(list)
    for n, e in enumerate(events):
        at = datetime.combine(e.day, time(e.hour, e.minute), UTC)
        delta = e.count if e.kind == "stamp" else -e.count if e.kind == "redemption" else 0
        cards[e.card].append(
            Entry(
                id=f"{n:032d}",
                program_id=program_id,
                kind=e.kind,
                delta=delta,
                device_id=e.device,
                created_at=at,
                voids_entry_id=None if e.voids is None else f"{e.voids:032d}",
            )
        )
    return cards


def rollups(events: Iterable[Event], required: int = 10) -> tuple[Rollups, dict[str, CardState]]:
    total, states = Rollups(), {}
    for card, history in ledger(events).items():
        share, state = replay(history, required={1: required}, tz=UTC_ZONE)
        total.merge(share)
        if state.first_day is not None:
            states[card] = state
    return total, states


def inputs(
    events: Iterable[Event],
    *,
    start: date,
    days: int,
    k: int,
    required: int = 10,
    outstanding: kpis.Outstanding | None = None,
    cycle: int | None = kpis.DEFAULT_CYCLE_DAYS,
    **more: object,
) -> kpis.Inputs:
    """cycle: the purchase cycle as if the owner had set it (None: derived from the visits)."""
    period = kpis.Period(day_number(start), day_number(start) + days)
    total, states = rollups(events, required)
    cards = list(states.values())
    return from_rollups(
        total, cards, period=period, k=k, outstanding=outstanding, chosen_cycle=cycle, **more
    )


def from_rollups(
    total: Rollups,
    cards: list[CardState],
    *,
    period: kpis.Period,
    k: int,
    outstanding: kpis.Outstanding | None = None,
    device_labels: dict[int, str] | None = None,
    chosen_cycle: int | None = None,
    program_dues: Sequence[kpis.ProgramDue] = (),
    money: kpis.Money | None = None,
) -> kpis.Inputs:
    """What gather() reads from the rollup tables, computed from rollups in memory."""
    previous = period.previous()
    rows = [(day, gap, n) for (day, gap), n in total.visits.items()]
    steps = kpis.buckets(period)
    shifted = [s.shifted(-period.days) for s in steps]

    def gaps(p: kpis.Period) -> dict[int, int]:
        out: dict[int, int] = defaultdict(int)
        for day, gap, n in rows:
            if gap > 0 and p.start <= day < p.end:
                out[gap] += n
        return dict(out)

    def once(p: kpis.Period) -> int:
        return sum(
            1
            for c in cards
            if c.first_day is not None
            and p.start <= c.first_day < p.end
            and (c.second_day is None or c.second_day >= p.end)
        )

    def first_in(day: int, gap: int) -> bool:
        """The row counts a card once in the period: distinct cards."""
        return period.start <= day < period.end and (gap == 0 or day - gap < period.start)

    hour_cards: dict[tuple[int, int], int] = defaultdict(int)
    for (day, hour, gap), n in total.hours.items():
        if first_in(day, gap):
            hour_cards[(weekday_of(day), hour)] += n
    weekday_cards: dict[int, int] = defaultdict(int)
    for (day, gap), n in total.weekdays.items():
        if first_in(day, gap):
            weekday_cards[weekday_of(day)] += n
    device_cards: dict[int, int] = defaultdict(int)
    for (day, device, gap), n in total.devices.items():
        if first_in(day, gap):
            device_cards[device] += n
    by_day: dict[int, list[int]] = defaultdict(lambda: [0] * 6)
    hours: dict[tuple[int, int], int] = defaultdict(int)
    devices: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0] * 4)
    device_lo = min(previous.start, period.start - kpis.BASELINE_DAYS)
    for (day, hour, device), counts in total.activity.items():
        scans, stamps, visits, _redemptions, voids, _rewards = counts
        if previous.start <= day < period.end:
            for n, value in enumerate(counts):
                by_day[day][n] += value
        if period.start <= day < period.end:
            hours[((day + 3) % 7, hour)] += visits
        if device_lo <= day < period.end:
            d = devices[(device, day)]
            for n, value in enumerate((scans, stamps, visits, voids)):
                d[n] += value
    first_cohort = month_of(period.end - 1) - kpis.COHORT_MONTHS + 1
    year = kpis.cycle_year(period)
    returning = kpis.count(rows, kpis.active_cards(year.start, year.end)) - once(year)
    cycle = kpis.purchase_cycle(gaps(year), returning, k, chosen_cycle)
    return kpis.Inputs(
        period=period,
        k=k,
        windows={w: kpis.count(rows, w) for w in kpis.windows_needed(period, cycle)},
        steps=kpis.bucket_counts(rows, steps),
        previous_steps=kpis.bucket_counts(rows, shifted),
        gaps=gaps(period),
        previous_gaps=gaps(previous),
        single_visit=once(period),
        previous_single_visit=once(previous),
        ever=sum(1 for c in cards if c.first_day is not None and c.first_day < period.end),
        previous_ever=sum(
            1 for c in cards if c.first_day is not None and c.first_day < period.start
        ),
        days=[kpis.DayActivity(day, *by_day[day]) for day in sorted(by_day)],
        hours=sorted((w, h, n, hour_cards[(w, h)]) for (w, h), n in hours.items()),
        weekday_cards={w: n for w, n in weekday_cards.items() if n},
        devices=[
            kpis.DeviceDay(device, day, *counts)
            for (device, day), counts in sorted(devices.items())
        ],
        device_cards={d: n for d, n in device_cards.items() if n},
        device_labels=device_labels or {},
        cohorts=sorted((f, m, n) for (f, m), n in total.cohorts.items() if f >= first_cohort and n),
        outstanding=outstanding or kpis.Outstanding(),
        cycle=cycle,
        program_dues=program_dues,
        money=money or kpis.Money(),
    )
