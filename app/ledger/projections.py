"""The ledger's projections: the dashboard's rollup tables, kept in each write's transaction.

The ledger writer calls record_entries() once per batch, inside the batch's transaction: one
read of the touched cards' state, then one upsert per distinct rollup key. forget_holder() takes
a deleted card's share back out; rebuild_rollups() recomputes everything from the ledger (demo
data, consistency checks, and after a bulk import). The tables and their maths are analytics'
(app.analytics.models, app.analytics.rollups); the dashboard only reads them.
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    RowMapping,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from app.analytics.models import (
    COUNTED,
    ROLLUP_TABLES,
    activity_table,
    card_table,
)
from app.analytics.rollups import (
    ACTIVITY_FIELDS,
    CardState,
    CardTally,
    Entry,
    Rollups,
    decode_recent,
    in_order,
    local_slot,
    replay,
    zone,
)
from app.db import Prepared, in_list, in_values
from app.ledger.models import Balance, LedgerEntry
from app.merchants.models import Merchant, Program

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
        if e.kind in ("stamp", "bonus"):
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
    """A deleted card leaves the rollups as if it had never been there: its whole share
    (read from its ledger entries: call this before they are deleted), its own row, and the
    stamps it held.

    Every count goes, not only the distinct-card ones: a visit count kept without the card
    row made a deleted one-visit card a repeat visitor and hid lapsed cards from the segments,
    and the gaps it kept would chain the deleted card's visits together in a quiet shop.
    """
    params = {"merchant_id": merchant_id, "holder": holder}
    history = [_entry(row._mapping) for row in conn.execute(_CARD_HISTORY, params)]
    required = _stamps_required(conn, {e.program_id for e in history}) if history else {}
    share, _ = replay(history, required=required, tz=zone(_timezone(conn, merchant_id)))
    gone = Rollups()
    gone.merge(share, sign=-1)
    for program_id, stamps in held:
        gone.hold(program_id, stamps, 0)
    _write(conn, rollup_rows({merchant_id: gone}))
    _drop_emptied(conn, merchant_id, gone)
    conn.execute(
        delete(card_table).where(
            card_table.c.merchant_id == merchant_id, card_table.c.holder == holder
        )
    )


def _drop_emptied(conn: Connection, merchant_id: int, gone: Rollups) -> None:
    """Delete the rows a deletion left at nothing: a row at zero would still mark where one of
    the card's visits was. A reward count gone below zero (the program's goal changed since it
    was counted, and the card's rewards were counted at the old one) is held at zero."""
    a = activity_table.c
    keys = sorted(gone.activity)
    if keys:
        mine = (a.merchant_id == merchant_id, tuple_(a.day, a.hour, a.device_id).in_(keys))
        below = update(activity_table).where(*mine, a.rewards_earned < 0)
        conn.execute(below.values(rewards_earned=0))
        conn.execute(delete(activity_table).where(*mine, *(a[f] == 0 for f in ACTIVITY_FIELDS)))
    for name, counter in gone.counters().items():
        table, columns, counted = COUNTED[name]
        if counter:
            key = tuple_(*(table.c[column] for column in columns))
            conn.execute(
                delete(table).where(
                    table.c.merchant_id == merchant_id,
                    key.in_(sorted(counter)),
                    table.c[counted] <= 0,
                )
            )


# --- rebuilt from the ledger --------------------------------------------------------------------

REBUILD_CHUNK = 10_000


def rebuild_rollups(
    conn: Connection, merchant_id: int | None = None, *, tables: Sequence[Any] = ROLLUP_TABLES
) -> None:
    """Recompute the rollups of one merchant (or all) from the ledger, replacing what was there.

    tables: only these (a migration that adds a rollup fills just its own tables).
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
