"""Analytics: rollup maintenance (with the ledger) and the queries the dashboard makes.

The ledger writer calls record_entries() once per batch, inside the batch's transaction: one
read of the touched cards' state, then one upsert per distinct rollup key. The dashboard never
reads the ledger; rebuild_rollups() recomputes everything from it (demo data, consistency
checks, and after a bulk import).
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, RowMapping, bindparam, delete, func, insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from app.analytics.models import ActivityRollup, CardRollup, CohortRollup, VisitRollup
from app.analytics.rollups import (
    ACTIVITY_FIELDS,
    CardState,
    CardTally,
    Entry,
    Rollups,
    day_date,
    day_number,
    in_order,
    local_slot,
    replay,
    zone,
)
from app.ledger.models import Balance, LedgerEntry
from app.merchants.models import Merchant, Program

activity_table = ActivityRollup.__table__  # type: ignore[attr-defined]
visit_table = VisitRollup.__table__  # type: ignore[attr-defined]
cohort_table = CohortRollup.__table__  # type: ignore[attr-defined]
card_table = CardRollup.__table__  # type: ignore[attr-defined]
ROLLUP_TABLES = (activity_table, visit_table, cohort_table, card_table)
_ledger = LedgerEntry.__table__  # type: ignore[attr-defined]
_balance = Balance.__table__  # type: ignore[attr-defined]
_merchant = Merchant.__table__  # type: ignore[attr-defined]
_program = Program.__table__  # type: ignore[attr-defined]

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
_CARD_STATES = (
    select(
        _balance.c.merchant_id,
        _balance.c.holder,
        _balance.c.program_id,
        _balance.c.lifetime_stamps,
        _merchant.c.timezone,
        _c.first_day,
        _c.second_day,
        _c.last_day,
        _c.visits,
    )
    .select_from(
        _balance.join(_merchant, _merchant.c.id == _balance.c.merchant_id).outerjoin(
            card_table,
            (_c.merchant_id == _balance.c.merchant_id) & (_c.holder == _balance.c.holder),
        )
    )
    .where(
        tuple_(_balance.c.merchant_id, _balance.c.holder).in_(bindparam("cards", expanding=True))
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
    fields = ("first_day", "second_day", "last_day", "visits")
    return stmt.on_conflict_do_update(
        index_elements=list(card_table.primary_key.columns),
        set_={name: stmt.excluded[name] for name in fields},
    )


_UPSERTS = {
    dialect: (
        _adding_upsert(dialect, activity_table, ACTIVITY_FIELDS),
        _adding_upsert(dialect, visit_table, ["visits"]),
        _adding_upsert(dialect, cohort_table, ["cards"]),
        _card_upsert(dialect),
    )
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
    for found in conn.execute(_CARD_STATES, {"cards": sorted(by_card)}):
        key = (found.merchant_id, found.holder)
        states[key] = found
        lifetimes[key][found.program_id] = found.lifetime_stamps
    outs: dict[int, Rollups] = defaultdict(Rollups)
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
            cards.append(_card_row(key, state))
        elif state_row is not None and state_row.first_day is not None:
            gone.append(key)  # its only visit was undone
    _write(conn, outs, cards)
    if gone:
        conn.execute(delete(card_table).where(tuple_(_c.merchant_id, _c.holder).in_(gone)))


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
    state = CardState(found.first_day, found.second_day, found.last_day, found.visits or 0)
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
    }


def rollup_rows(
    outs: Mapping[int, Rollups],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows for the activity, visit and cohort tables (keys adding up to nothing left out)."""
    activity, visits, cohorts = [], [], []
    for merchant_id, out in outs.items():
        for (day, hour, device_id), counts in out.activity.items():
            if any(counts):
                row = {"merchant_id": merchant_id, "day": day, "hour": hour, "device_id": device_id}
                activity.append(row | dict(zip(ACTIVITY_FIELDS, counts, strict=True)))
        for (day, gap), n in out.visits.items():
            if n:
                visits.append({"merchant_id": merchant_id, "day": day, "gap": gap, "visits": n})
        for (first_month, month), n in out.cohorts.items():
            if n:
                cohorts.append(
                    {"merchant_id": merchant_id, "first_month": first_month, "month": month,
                     "cards": n}
                )  # fmt: skip
    return activity, visits, cohorts


def _write(conn: Connection, outs: Mapping[int, Rollups], cards: list[dict[str, Any]]) -> None:
    """One statement per rollup table, one row per distinct key (counts are added)."""
    upserts = _UPSERTS[conn.dialect.name]
    for stmt, rows in zip(upserts, (*rollup_rows(outs), cards), strict=True):
        if rows:
            conn.execute(stmt, rows)


# --- rebuilt from the ledger --------------------------------------------------------------------

REBUILD_CHUNK = 10_000


def rebuild_rollups(conn: Connection, merchant_id: int | None = None) -> None:
    """Recompute the rollups of one merchant (or all) from the ledger, replacing what was there."""
    for table in ROLLUP_TABLES:
        stmt = delete(table)
        if merchant_id is not None:
            stmt = stmt.where(table.c.merchant_id == merchant_id)
        conn.execute(stmt)
    outs, cards = recompute(conn, merchant_id)
    activity, visits, cohorts = rollup_rows(outs)
    for table, rows in zip(ROLLUP_TABLES, (activity, visits, cohorts, cards), strict=True):
        for i in range(0, len(rows), REBUILD_CHUNK):
            conn.execute(insert(table), rows[i : i + REBUILD_CHUNK])


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
