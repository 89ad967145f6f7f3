"""Analytics: rollup maintenance (with the ledger) and the queries the dashboard makes.

The ledger writer calls record_entries() once per batch, inside the batch's transaction: one
read of the touched cards' state, then one upsert per distinct rollup key. The dashboard never
reads the ledger; rebuild_rollups() recomputes everything from it (demo data, consistency
checks, and after a bulk import).
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    RowMapping,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

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
    ActivityRollup,
    CardRollup,
    CohortRollup,
    DeviceCardRollup,
    HoldingRollup,
    HourVisitRollup,
    VisitRollup,
    WeekdayVisitRollup,
)
from app.analytics.rollups import (
    ACTIVITY_FIELDS,
    CardState,
    CardTally,
    Entry,
    Rollups,
    day_date,
    day_number,
    decode_recent,
    in_order,
    local_slot,
    month_of,
    replay,
    zone,
)
from app.db import Prepared, in_list, in_values
from app.errors import Unprocessable
from app.ledger.models import Balance, LedgerEntry
from app.merchants.models import Device, Merchant, Program

activity_table = ActivityRollup.__table__  # type: ignore[attr-defined]
visit_table = VisitRollup.__table__  # type: ignore[attr-defined]
cohort_table = CohortRollup.__table__  # type: ignore[attr-defined]
holding_table = HoldingRollup.__table__  # type: ignore[attr-defined]
card_table = CardRollup.__table__  # type: ignore[attr-defined]
hour_table = HourVisitRollup.__table__  # type: ignore[attr-defined]
weekday_table = WeekdayVisitRollup.__table__  # type: ignore[attr-defined]
device_table = DeviceCardRollup.__table__  # type: ignore[attr-defined]
# Rollups' single-count fields: their table, the key columns after merchant_id, the count.
COUNTED = {
    "visits": (visit_table, ("day", "gap"), "visits"),
    "cohorts": (cohort_table, ("first_month", "month"), "cards"),
    "holdings": (holding_table, ("program_id", "stamps"), "cards"),
    "hours": (hour_table, ("day", "hour", "gap"), "visits"),
    "weekdays": (weekday_table, ("day", "gap"), "visits"),
    "devices": (device_table, ("day", "device_id", "gap"), "cards"),
}
# A deleted card's share leaves these: their gaps chain one card's visits together.
CHAINED = ("hours", "weekdays", "devices")
ROLLUP_TABLES = (
    activity_table,
    *(table for table, _, _ in COUNTED.values()),
    card_table,
)
_ledger = LedgerEntry.__table__  # type: ignore[attr-defined]
_balance = Balance.__table__  # type: ignore[attr-defined]
_merchant = Merchant.__table__  # type: ignore[attr-defined]
_program = Program.__table__  # type: ignore[attr-defined]
_device = Device.__table__  # type: ignore[attr-defined]

_ENTRY_COLUMNS = (
    _ledger.c.id,
    _ledger.c.program_id,
    _ledger.c.kind,
    _ledger.c.delta,
    _ledger.c.device_id,
    _ledger.c.created_at,
    _ledger.c.voids_entry_id,
)
_CARD_HISTORY = select(*_ENTRY_COLUMNS).where(
    _ledger.c.merchant_id == bindparam("merchant_id"), _ledger.c.holder == bindparam("holder")
)
_c = card_table.c


@cache
def _card_states(size: int) -> Prepared:
    """The state of the cards with `size` holders (in_values): balances, rollup row, zone.

    By holder alone, so that the holder index finds them (a list of (merchant, holder) pairs
    made SQLite scan every balance); a holder is one card at one merchant anyway.
    """
    return Prepared(_CARD_STATES.where(in_list(_balance.c.holder, size)))


_CARD_STATES = select(
    _balance.c.merchant_id,
    _balance.c.holder,
    _balance.c.program_id,
    _balance.c.lifetime_stamps,
    _balance.c.stamps,
    _merchant.c.timezone,
    _c.first_day,
    _c.second_day,
    _c.last_day,
    _c.visits,
    _c.recent,
).select_from(
    _balance.join(_merchant, _merchant.c.id == _balance.c.merchant_id).outerjoin(
        card_table,
        (_c.merchant_id == _balance.c.merchant_id) & (_c.holder == _balance.c.holder),
    )
)


def _adding_upsert(dialect: str, table: Any, counters: Iterable[str]) -> Any:
    """INSERT … ON CONFLICT (key) DO UPDATE SET counter = counter + excluded.counter."""
    make_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = make_insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={name: table.c[name] + stmt.excluded[name] for name in counters},
    )


def _card_upsert(dialect: str) -> Any:
    make_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = make_insert(card_table)
    fields = ("first_day", "second_day", "last_day", "visits", "recent")
    return stmt.on_conflict_do_update(
        index_elements=list(card_table.primary_key.columns),
        set_={name: stmt.excluded[name] for name in fields},
    )


_UPSERTS = {
    dialect: {
        activity_table.name: Prepared(_adding_upsert(dialect, activity_table, ACTIVITY_FIELDS)),
        **{
            table.name: Prepared(_adding_upsert(dialect, table, [counted]))
            for table, _, counted in COUNTED.values()
        },
        card_table.name: Prepared(_card_upsert(dialect)),
    }
    for dialect in ("sqlite", "postgresql")
}


def _entry(row: Mapping[str, Any] | RowMapping) -> Entry:
    return Entry(
        id=row["id"],
        program_id=row["program_id"],
        kind=row["kind"],
        delta=row["delta"],
        device_id=row["device_id"],
        created_at=row["created_at"],
        voids_entry_id=row["voids_entry_id"],
    )


# --- kept with the ledger -----------------------------------------------------------------------


def record_entries(
    conn: Connection, entries: list[dict[str, Any]], programs: Iterable[Any]
) -> None:
    """Fold a batch's new ledger entries (already inserted) into the rollups, in its transaction.

    `programs` are the program rows the batch looked up (for their stamps_required). A card
    whose batch holds an undo, or an entry older than its last visit, is replayed from its
    history; every other card is extended from its stored state without reading the ledger.
    """
    if not entries:
        return
    by_card: dict[tuple[int, str], list[Entry]] = defaultdict(list)
    for row in entries:
        by_card[(row["merchant_id"], row["holder"])].append(_entry(row))
    required = {p.id: p.stamps_required for p in programs if p is not None}
    states: dict[tuple[int, str], Any] = {}
    lifetimes: dict[tuple[int, str], dict[int, int]] = defaultdict(dict)
    outs: dict[int, Rollups] = defaultdict(Rollups)
    for found in _states(conn, sorted(by_card)):
        key = (found.merchant_id, found.holder)
        states[key] = found
        lifetimes[key][found.program_id] = found.lifetime_stamps
        # Balances already hold the batch: its entries' deltas lead back to before it.
        moved = sum(e.delta for e in by_card[key] if e.program_id == found.program_id)
        outs[key[0]].hold(found.program_id, found.stamps - moved, found.stamps)
    cards: list[dict[str, Any]] = []
    gone: list[tuple[int, str]] = []
    batch_ids = {row["id"] for row in entries}
    for key, new in by_card.items():
        state_row = states.get(key)
        tz = zone(state_row.timezone if state_row is not None else _timezone(conn, key[0]))
        out = outs[key[0]]
        if state_row is not None and _can_extend(state_row, new, tz):
            state = _extend(state_row, new, lifetimes[key], required, tz, out)
        else:
            state = _replace(conn, key, batch_ids, required, tz, out)
        if state.first_day is not None:
            row = _card_row(key, state)
            if state_row is None or _changed(state_row, row):
                cards.append(row)
        elif state_row is not None and state_row.first_day is not None:
            gone.append(key)  # its only visit was undone
    _write(conn, {**rollup_rows(outs), card_table.name: cards})
    if gone:
        conn.execute(delete(card_table).where(tuple_(_c.merchant_id, _c.holder).in_(gone)))


def _states(conn: Connection, cards: list[tuple[int, str]]) -> list[Any]:
    holders = in_values(sorted({holder for _, holder in cards}))
    rows = _card_states(len(holders)).all(conn, holders)
    wanted = set(cards)
    return [row for row in rows if (row.merchant_id, row.holder) in wanted]


def _changed(found: Any, row: Mapping[str, Any]) -> bool:
    # A second stamp the same day at the same device changes no day: nothing to write.
    return (found.first_day, found.second_day, found.last_day, found.visits, found.recent) != (
        row["first_day"], row["second_day"], row["last_day"], row["visits"], row["recent"]
    )  # fmt: skip


def _timezone(conn: Connection, merchant_id: int) -> str:
    found = conn.execute(select(_merchant.c.timezone).where(_merchant.c.id == merchant_id))
    return str(found.scalar() or "UTC")


def _can_extend(found: Any, new: list[Entry], tz: ZoneInfo) -> bool:
    if any(e.kind == "void" for e in new):
        return False
    if found.last_day is None:
        return True
    return all(local_slot(e.created_at, tz)[0] >= found.last_day for e in new)


def _extend(
    found: Any,
    new: list[Entry],
    lifetime: dict[int, int],
    required: dict[int, int],
    tz: ZoneInfo,
    out: Rollups,
) -> CardState:
    # The balance already holds this batch's stamps: step back to before the first of them.
    for e in new:
        if e.kind == "stamp":
            lifetime[e.program_id] = lifetime.get(e.program_id, 0) - e.delta
    slots, devices = decode_recent(found.recent)
    state = CardState(
        found.first_day, found.second_day, found.last_day, found.visits or 0, slots, devices
    )
    tally = CardTally(state=state, lifetime=lifetime, required=required, tz=tz, out=out)
    for entry in in_order(new):
        tally.add(entry)
    return state


def _replace(
    conn: Connection,
    key: tuple[int, str],
    batch_ids: set[str],
    required: dict[int, int],
    tz: ZoneInfo,
    out: Rollups,
) -> CardState:
    """Take back the card's share as it was before this batch and add its share now."""
    merchant_id, holder = key
    params = {"merchant_id": merchant_id, "holder": holder}
    history = [_entry(row._mapping) for row in conn.execute(_CARD_HISTORY, params)]
    missing = {e.program_id for e in history} - required.keys()
    if missing:
        required = {**required, **_stamps_required(conn, missing)}
    before, _ = replay([e for e in history if e.id not in batch_ids], required=required, tz=tz)
    after, state = replay(history, required=required, tz=tz)
    out.merge(after)
    out.merge(before, sign=-1)
    return state


def _stamps_required(conn: Connection, program_ids: Iterable[int] | None = None) -> dict[int, int]:
    query = select(_program.c.id, _program.c.stamps_required)
    if program_ids is not None:
        query = query.where(_program.c.id.in_(sorted(program_ids)))
    return {row.id: row.stamps_required for row in conn.execute(query)}


def _card_row(key: tuple[int, str], state: CardState) -> dict[str, Any]:
    return {
        "merchant_id": key[0],
        "holder": key[1],
        "first_day": state.first_day,
        "second_day": state.second_day,
        "last_day": state.last_day,
        "visits": state.visits,
        "recent": state.recent(),
    }


def rollup_rows(outs: Mapping[int, Rollups]) -> dict[str, list[dict[str, Any]]]:
    """Rows for each counting table, by table name (keys adding up to nothing left out)."""
    rows: dict[str, list[dict[str, Any]]] = {activity_table.name: []}
    rows.update({table.name: [] for table, _, _ in COUNTED.values()})
    for merchant_id, out in outs.items():
        m = {"merchant_id": merchant_id}
        for (day, hour, device_id), counts in out.activity.items():
            if any(counts):
                key = {"day": day, "hour": hour, "device_id": device_id}
                counted = dict(zip(ACTIVITY_FIELDS, counts, strict=True))
                rows[activity_table.name].append(m | key | counted)
        for name, counter in out.counters().items():
            table, columns, count_column = COUNTED[name]
            into = rows[table.name]
            for key_values, n in counter.items():
                if n:
                    into.append(m | dict(zip(columns, key_values, strict=True)) | {count_column: n})
    return rows


def _write(conn: Connection, rows: Mapping[str, list[dict[str, Any]]]) -> None:
    """One statement per rollup table, one row per distinct key (counts are added)."""
    upserts = _UPSERTS[conn.dialect.name]
    for name, table_rows in rows.items():
        if table_rows:
            upserts[name].many(conn, table_rows)


def forget_holder(
    conn: Connection, *, merchant_id: int, holder: str, held: Iterable[tuple[int, int]]
) -> None:
    """A deleted card leaves the rollups: its own row goes, the cards it held stop counting,
    and its share of the per-slot and per-device counts goes (read from its ledger entries:
    call this before they are deleted).

    The day, hour, visit and cohort counts keep it only as a number among others. The slot and
    device counts exist only to count distinct cards, which it no longer is, and their gaps,
    on a quiet weekday hour or device, would chain its visits together.
    """
    params = {"merchant_id": merchant_id, "holder": holder}
    history = [_entry(row._mapping) for row in conn.execute(_CARD_HISTORY, params)]
    if history:
        share, _ = replay(history, required={}, tz=zone(_timezone(conn, merchant_id)))
        gone = Rollups()
        for name in CHAINED:
            getattr(gone, name).update({k: -n for k, n in getattr(share, name).items() if n})
        _write(conn, rollup_rows({merchant_id: gone}))
        for name in CHAINED:
            table, columns, counted = COUNTED[name]
            keys = sorted(getattr(gone, name))
            if keys:
                # A row left at zero would still mark where one of its visits was.
                key = tuple_(*(table.c[column] for column in columns))
                conn.execute(
                    delete(table).where(
                        table.c.merchant_id == merchant_id, key.in_(keys), table.c[counted] <= 0
                    )
                )
    conn.execute(
        delete(card_table).where(
            card_table.c.merchant_id == merchant_id, card_table.c.holder == holder
        )
    )
    rows = [
        {"merchant_id": merchant_id, "program_id": program_id, "stamps": stamps, "cards": -1}
        for program_id, stamps in held
        if stamps > 0
    ]
    if rows:
        _UPSERTS[conn.dialect.name][holding_table.name].many(conn, rows)
        conn.execute(
            delete(holding_table).where(
                holding_table.c.merchant_id == merchant_id, holding_table.c.cards <= 0
            )
        )


# --- rebuilt from the ledger --------------------------------------------------------------------

REBUILD_CHUNK = 10_000


def rebuild_rollups(
    conn: Connection, merchant_id: int | None = None, *, tables: Sequence[Any] = ROLLUP_TABLES
) -> None:
    """Recompute the rollups of one merchant (or all) from the ledger, replacing what was there.

    tables: only these (a migration that adds a rollup fills just its own tables, and leaves
    the counts that deleted cards still hold a part of alone).
    """
    for table in tables:
        stmt = delete(table)
        if merchant_id is not None:
            stmt = stmt.where(table.c.merchant_id == merchant_id)
        conn.execute(stmt)
    outs, cards = recompute(conn, merchant_id)
    rows = {**rollup_rows(outs), card_table.name: cards}
    for table in tables:
        for i in range(0, len(rows[table.name]), REBUILD_CHUNK):
            conn.execute(insert(table), rows[table.name][i : i + REBUILD_CHUNK])


def recompute(
    conn: Connection, merchant_id: int | None = None
) -> tuple[dict[int, Rollups], list[dict[str, Any]]]:
    """The rollups as the ledger says they should be: per-merchant counts and card rows."""
    required = _stamps_required(conn)
    zones = {
        row.id: zone(row.timezone)
        for row in conn.execute(select(_merchant.c.id, _merchant.c.timezone))
    }
    outs: dict[int, Rollups] = defaultdict(Rollups)
    cards: list[dict[str, Any]] = []
    for key, history in _histories(conn, merchant_id):
        share, state = replay(history, required=required, tz=zones[key[0]])
        outs[key[0]].merge(share)
        if state.first_day is not None:
            cards.append(_card_row(key, state))
    b = _balance.c
    held = select(b.merchant_id, b.program_id, b.stamps, func.count()).where(b.stamps > 0)
    if merchant_id is not None:
        held = held.where(b.merchant_id == merchant_id)
    for merchant, program_id, stamps, n in conn.execute(
        held.group_by(b.merchant_id, b.program_id, b.stamps)
    ):
        outs[merchant].holdings[(program_id, stamps)] += n
    return outs, cards


def _histories(
    conn: Connection, merchant_id: int | None
) -> Iterator[tuple[tuple[int, str], list[Entry]]]:
    """Every card's ledger history, one card at a time (streamed, in index order)."""
    query = select(_ledger.c.merchant_id, _ledger.c.holder, *_ENTRY_COLUMNS).order_by(
        _ledger.c.merchant_id, _ledger.c.holder, _ledger.c.created_at
    )
    if merchant_id is not None:
        query = query.where(_ledger.c.merchant_id == merchant_id)
    key: tuple[int, str] | None = None
    history: list[Entry] = []
    result = conn.execute(query.execution_options(yield_per=REBUILD_CHUNK))
    for row in result:
        row_key = (row.merchant_id, row.holder)
        if row_key != key:
            if key is not None:
                yield key, history
            key, history = row_key, []
        history.append(_entry(row._mapping))
    if key is not None:
        yield key, history


# --- read by the merchant area ------------------------------------------------------------------


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


class PeriodError(Unprocessable):
    title = "Invalid period"


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


def feedback_figures(
    *, session: Session, merchant: Merchant, period: Period, k: int
) -> dict[str, Any] | None:
    """The feedback area's summary for the period (CSAT, average rating, NPS), if installed."""
    try:
        from app.feedback.service import figures
    except ImportError:  # the feedback area is optional for analytics
        return None
    tz = zone(merchant.timezone)
    start, end = (
        datetime.combine(day_date(d), time(0), tz).astimezone(UTC)
        for d in (period.start, period.end)
    )
    assert merchant.id is not None
    result: dict[str, Any] = figures(
        session=session, merchant_id=merchant.id, start=start, end=end, k=k
    )
    return result
