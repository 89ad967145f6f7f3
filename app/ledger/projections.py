"""The ledger's projections: the dashboard's rollup tables, kept in each write's transaction.

The ledger writer calls record_entries() once per batch, inside the batch's transaction: one
read of the touched cards' state, then one upsert per distinct rollup key. forget_holder() takes
a deleted card's share back out; rebuild_rollups() recomputes everything from the ledger (demo
data, consistency checks, and after a bulk import). The tables and their maths are analytics'
(app.analytics.models, app.analytics.rollups); the dashboard only reads them.
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from functools import cache, partial
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    RowMapping,
    bindparam,
    column,
    delete,
    func,
    insert,
    inspect,
    select,
    tuple_,
    update,
)
from sqlalchemy import table as sa_table
from sqlalchemy.dialects import postgresql, sqlite

from app.analytics.holdout import PROMOTION_FIELDS, Trial
from app.analytics.models import (
    COUNTED,
    ROLLUP_TABLES,
    activity_table,
    card_table,
    funnel_table,
    promotion_table,
)
from app.analytics.rollups import (
    ACTIVITY_FIELDS,
    POSTER,
    CardState,
    CardTally,
    Entry,
    Rollups,
    arrival_source,
    day_number,
    decode_recent,
    in_order,
    local_slot,
    replay,
    zone,
)
from app.claims.models import ClaimCode
from app.db import Prepared, in_list, in_values
from app.ledger.models import Balance, LedgerEntry
from app.loyalty.models import Promotion
from app.merchants.models import Merchant, Program

_ledger = LedgerEntry.__table__  # type: ignore[attr-defined]
_balance = Balance.__table__  # type: ignore[attr-defined]
_merchant = Merchant.__table__  # type: ignore[attr-defined]
_program = Program.__table__  # type: ignore[attr-defined]
_claim = ClaimCode.__table__  # type: ignore[attr-defined]
_promotion = Promotion.__table__  # type: ignore[attr-defined]


_ENTRY_COLUMNS = (
    _ledger.c.id,
    _ledger.c.program_id,
    _ledger.c.kind,
    _ledger.c.delta,
    _ledger.c.device_id,
    _ledger.c.created_at,
    _ledger.c.voids_entry_id,
    _ledger.c.promotion_id,
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
    _c.steps,
    _c.source,
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
    fields = ("first_day", "second_day", "last_day", "visits", "recent", "steps", "source")
    return stmt.on_conflict_do_update(
        index_elements=list(card_table.primary_key.columns),
        set_={name: stmt.excluded[name] for name in fields},
    )


_UPSERTS = {
    dialect: {
        activity_table.name: Prepared(_adding_upsert(dialect, activity_table, ACTIVITY_FIELDS)),
        promotion_table.name: Prepared(_adding_upsert(dialect, promotion_table, PROMOTION_FIELDS)),
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
        promotion_id=row.get("promotion_id"),
    )


# --- promotions' hold-out trials ----------------------------------------------------------------


def trials(promotions: Iterable[Any], tz: ZoneInfo) -> list[Trial]:
    """The promotions with a hold-out (ended ones too), as their rollup counts them: from the
    first to the last day they ran, in the shop's calendar."""
    out = []
    for p in promotions:
        if p.holdout_percent <= 0:
            continue
        first = p.starts_on or _local_date(p.created_at, tz)
        last = p.ends_on
        if p.ended_at is not None:
            ended = _local_date(p.ended_at, tz)
            last = ended if last is None else min(_date(last), ended)
        out.append(
            Trial(
                promotion_id=p.id, key=p.holdout_key, percent=p.holdout_percent,
                first_day=day_number(_date(first)),
                last_day=None if last is None else day_number(_date(last)),
            )
        )  # fmt: skip
    return out


def _date(value: Any) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else cast(date, value)


def _local_date(moment: Any, tz: ZoneInfo) -> date:
    if isinstance(moment, str):  # SQLite's text, as a Prepared row holds it
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    local: date = moment.astimezone(tz).date()
    return local


class Trials:
    """The merchants' hold-out trials, for the cards of one write: from the promotion rows the
    writer already holds (`held`, by merchant), else read once per merchant when first needed."""

    def __init__(self, conn: Connection, held: Mapping[int, list[Any]] | None = None) -> None:
        self.conn = conn
        self.held = held or {}
        self.found: dict[int, list[Trial]] = {}

    def of(self, merchant_id: int, tz: ZoneInfo) -> list[Trial]:
        found = self.found.get(merchant_id)
        if found is None:
            rows = self.held.get(merchant_id)
            if rows is None:
                rows = _holdout_promotions(self.conn, merchant_id)
            found = self.found[merchant_id] = trials(rows, tz)
        return found


def _holdout_promotions(conn: Connection, merchant_id: int | None) -> list[Any]:
    """A merchant's (None: every merchant's) promotions with a hold-out."""
    query = select(_promotion).where(_promotion.c.holdout_percent > 0)
    if merchant_id is not None:
        query = query.where(_promotion.c.merchant_id == merchant_id)
    return list(conn.execute(query))


def record_entries(
    conn: Connection,
    entries: list[dict[str, Any]],
    programs: Iterable[Any],
    held: Mapping[int, list[Any]] | None = None,
) -> None:
    """Fold a batch's new ledger entries (already inserted) into the rollups, in its transaction.

    `programs` are the program rows the batch looked up (for their stamps_required). A card
    whose batch holds an undo, or an entry older than its last visit, is replayed from its
    history; every other card is extended from its stored state without reading the ledger.

    A stamp may say what the card row holds (`card_printed`, `card_created_day`): at a card's
    first visit here they decide its source (app.analytics.rollups.arrival_source).
    `held`: the merchants' promotions with a hold-out, where the caller holds them already.
    """
    if not entries:
        return
    by_card: dict[tuple[int, str], list[Entry]] = defaultdict(list)
    raw = {row["id"]: row for row in entries}
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
    batch_ids = set(raw)
    trials_of = Trials(conn, held)
    claimed = _claimed(conn, [raw[e.id] for key, new in by_card.items() for e in new
                              if e.kind == "stamp" and _arriving(states.get(key))])  # fmt: skip
    for key, new in by_card.items():
        state_row = states.get(key)
        tz = zone(state_row.timezone if state_row is not None else _timezone(conn, key[0]))
        out = outs[key[0]]
        tried = trials_of.of(key[0], tz)
        if state_row is not None and _can_extend(state_row, new, tz):
            state = _extend(state_row, new, lifetimes[key], required, tz, out, key[1], tried)
        else:
            state = _replace(conn, key, batch_ids, required, tz, out, tried)
        arrival = [raw[e.id] for e in in_order(new) if e.kind == "stamp" and e.id in raw]
        source = _source(state_row, state, arrival, claimed, out)
        if state.first_day is not None:
            row = _card_row(key, state, source)
            if state_row is None or _changed(state_row, row):
                cards.append(row)
        elif state_row is not None and state_row.first_day is not None:
            gone.append(key)  # its only visit was undone
    _write(conn, {**rollup_rows(outs), card_table.name: cards})
    if gone:
        conn.execute(delete(card_table).where(tuple_(_c.merchant_id, _c.holder).in_(gone)))


def _arriving(found: Any) -> bool:
    """The card has no visit here yet: this batch may hold its first."""
    return found is None or found.first_day is None


def _claimed(conn: Connection, stamps: Sequence[Mapping[str, Any]]) -> set[str]:
    """Which of these stamps came through a claim code (one indexed read, only for a batch with
    stamps of cards new to their shop): the claim names its stamp before the batch is flushed,
    and was made before the code expired."""
    if not stamps:
        return set()
    c = _claim.c
    found = conn.execute(
        select(c.entry_id).where(
            c.merchant_id.in_(sorted({row["merchant_id"] for row in stamps})),
            c.expires_at >= min(row["created_at"] for row in stamps),
            c.entry_id.in_(sorted(row["id"] for row in stamps)),
        )
    )
    return {entry_id for (entry_id,) in found}


def _source(
    found: Any,
    state: CardState,
    stamps: Sequence[Mapping[str, Any]],
    claimed: set[str],
    out: Rollups,
) -> int:
    """The card's source here, counted on the day of its first visit (moved with that day
    when an undo moves it, taken back when its only visit is undone)."""
    before_day = None if found is None else found.first_day
    before = 0 if found is None or found.first_day is None else found.source or 0
    if before_day == state.first_day:
        return before
    if before_day is not None and before:
        out.funnel[(before_day, before)] -= 1
    if state.first_day is None:
        return 0
    source = before if before_day is not None else _arrival(stamps, claimed)
    if source:
        out.funnel[(state.first_day, source)] += 1
    return source


def _arrival(stamps: Sequence[Mapping[str, Any]], claimed: set[str]) -> int:
    if not stamps:
        return 0
    first = stamps[0]
    created = first.get("card_created_day")
    if isinstance(created, str):  # SQLite's driver gives dates as text
        created = date.fromisoformat(created)
    printed = first.get("card_printed")
    return arrival_source(
        via_claim=first["id"] in claimed,
        printed=None if printed is None else bool(printed),
        created=created,
        on=first["created_at"].date(),
    )


def _states(conn: Connection, cards: list[tuple[int, str]]) -> list[Any]:
    holders = in_values(sorted({holder for _, holder in cards}))
    rows = _card_states(len(holders)).all(conn, holders)
    wanted = set(cards)
    return [row for row in rows if (row.merchant_id, row.holder) in wanted]


def _changed(found: Any, row: Mapping[str, Any]) -> bool:
    # A second stamp the same day at the same device changes no day: nothing to write.
    names = ("first_day", "second_day", "last_day", "visits", "recent", "steps", "source")
    return any(getattr(found, name) != row[name] for name in names)


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
    holder: str,
    tried: list[Trial],
) -> CardState:
    # The balance already holds this batch's stamps: step back to before the first of them.
    for e in new:
        if e.kind in ("stamp", "bonus"):
            lifetime[e.program_id] = lifetime.get(e.program_id, 0) - e.delta
    slots, devices = decode_recent(found.recent)
    state = CardState(
        found.first_day, found.second_day, found.last_day, found.visits or 0, slots, devices,
        found.steps or 0,
    )  # fmt: skip
    tally = CardTally(
        state=state, lifetime=lifetime, required=required, tz=tz, out=out, holder=holder,
        trials=tried,
    )  # fmt: skip
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
    tried: list[Trial],
) -> CardState:
    """Take back the card's share as it was before this batch and add its share now."""
    merchant_id, holder = key
    params = {"merchant_id": merchant_id, "holder": holder}
    history = [_entry(row._mapping) for row in conn.execute(_CARD_HISTORY, params)]
    missing = {e.program_id for e in history} - required.keys()
    if missing:
        required = {**required, **_stamps_required(conn, missing)}
    again = partial(replay, required=required, tz=tz, holder=holder, trials=tried)
    before, _ = again([e for e in history if e.id not in batch_ids])
    after, state = again(history)
    out.merge(after)
    out.merge(before, sign=-1)
    return state


def _stamps_required(conn: Connection, program_ids: Iterable[int] | None = None) -> dict[int, int]:
    query = select(_program.c.id, _program.c.stamps_required)
    if program_ids is not None:
        query = query.where(_program.c.id.in_(sorted(program_ids)))
    return {row.id: row.stamps_required for row in conn.execute(query)}


def _card_row(key: tuple[int, str], state: CardState, source: int) -> dict[str, Any]:
    return {
        "merchant_id": key[0],
        "holder": key[1],
        "first_day": state.first_day,
        "second_day": state.second_day,
        "last_day": state.last_day,
        "visits": state.visits,
        "recent": state.recent(),
        "steps": state.steps,
        "source": source,
    }


def rollup_rows(outs: Mapping[int, Rollups]) -> dict[str, list[dict[str, Any]]]:
    """Rows for each counting table, by table name (keys adding up to nothing left out)."""
    rows: dict[str, list[dict[str, Any]]] = {activity_table.name: [], promotion_table.name: []}
    rows.update({table.name: [] for table, _, _ in COUNTED.values()})
    for merchant_id, out in outs.items():
        m = {"merchant_id": merchant_id}
        for (day, hour, device_id), counts in out.activity.items():
            if any(counts):
                key = {"day": day, "hour": hour, "device_id": device_id}
                counted = dict(zip(ACTIVITY_FIELDS, counts, strict=True))
                rows[activity_table.name].append(m | key | counted)
        for (promotion_id, day, held_out), counts in out.promotions.items():
            if any(counts):
                key = {"promotion_id": promotion_id, "day": day, "held_out": held_out}
                counted = dict(zip(PROMOTION_FIELDS, counts, strict=True))
                rows[promotion_table.name].append(m | key | counted)
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


def record_card_made(conn: Connection, *, merchant_id: int, day: int) -> None:
    """A card made from a shop's own page (what its counter poster opens), on a local day: a
    count of that day, nothing about the card."""
    row = {"merchant_id": merchant_id, "day": day, "step": POSTER, "cards": 1}
    _write(conn, {funnel_table.name: [row]})


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
    tz = zone(_timezone(conn, merchant_id))
    tried = trials(_holdout_promotions(conn, merchant_id), tz)
    share, _ = replay(history, required=required, tz=tz, holder=holder, trials=tried)
    gone = Rollups()
    gone.merge(share, sign=-1)
    mine = (card_table.c.merchant_id == merchant_id, card_table.c.holder == holder)
    arrived = conn.execute(select(_c.first_day, _c.source).where(*mine)).first()
    if arrived is not None and arrived.source:
        # Its arrival goes with it; a card made from the poster stays counted as made: nothing
        # ties that count to a card.
        gone.funnel[(arrived.first_day, arrived.source)] -= 1
    for program_id, stamps in held:
        gone.hold(program_id, stamps, 0)
    _write(conn, rollup_rows({merchant_id: gone}))
    _drop_emptied(conn, merchant_id, gone)
    conn.execute(delete(card_table).where(*mine))


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
    t = promotion_table.c
    keys = sorted(gone.promotions)
    if keys:
        tried = (t.merchant_id == merchant_id, tuple_(t.promotion_id, t.day, t.held_out).in_(keys))
        conn.execute(delete(promotion_table).where(*tried, *(t[f] == 0 for f in PROMOTION_FIELDS)))
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

    tables: only these (a migration that adds a rollup fills just its own tables; before the
    funnel's migration, the card rows without its columns).
    """
    outs, cards = recompute(conn, merchant_id)
    if not _has_funnel(conn):
        cards = [{k: v for k, v in row.items() if k not in ("steps", "source")} for row in cards]
    for table in tables:
        stmt = delete(table)
        if merchant_id is not None:
            stmt = stmt.where(table.c.merchant_id == merchant_id)
        conn.execute(stmt)
    rows = {**rollup_rows(outs), card_table.name: cards}
    for table in tables:
        found = rows[table.name]
        if found:
            # Exactly the rows' columns: the table's own defaults would name columns that an
            # older migration's database does not have yet.
            into = insert(sa_table(table.name, *map(column, found[0])))
            for i in range(0, len(found), REBUILD_CHUNK):
                conn.execute(into, found[i : i + REBUILD_CHUNK])


def recompute(
    conn: Connection, merchant_id: int | None = None
) -> tuple[dict[int, Rollups], list[dict[str, Any]]]:
    """The rollups as the ledger says they should be: per-merchant counts and card rows.

    What the ledger does not hold is carried over from the rollups: each card's source (from
    its row) and the cards made from each shop's poster.
    """
    sources, posters = _carried(conn, merchant_id)
    required = _stamps_required(conn)
    zones = {
        row.id: zone(row.timezone)
        for row in conn.execute(select(_merchant.c.id, _merchant.c.timezone))
    }
    # Before the loyalty migration (an older migration's rebuild runs today's code): no bonus
    # names a promotion, and no promotion has a hold-out.
    loyal = inspect(conn).has_table(_promotion.name)
    holding: defaultdict[int, list[Any]] = defaultdict(list)
    for row in _holdout_promotions(conn, merchant_id) if loyal else []:
        holding[row.merchant_id].append(row)
    tried = {m: trials(rows, zones[m]) for m, rows in holding.items()}
    outs: dict[int, Rollups] = defaultdict(Rollups)
    cards: list[dict[str, Any]] = []
    for key, history in _histories(conn, merchant_id, loyal):
        share, state = replay(
            history, required=required, tz=zones[key[0]], holder=key[1],
            trials=tried.get(key[0], ()),
        )  # fmt: skip
        outs[key[0]].merge(share)
        if state.first_day is not None:
            source = sources.get(key, 0)
            cards.append(_card_row(key, state, source))
            if source:
                outs[key[0]].funnel[(state.first_day, source)] += 1
    for merchant, day, n in posters:
        outs[merchant].funnel[(day, POSTER)] += n
    b = _balance.c
    held = select(b.merchant_id, b.program_id, b.stamps, func.count()).where(b.stamps > 0)
    if merchant_id is not None:
        held = held.where(b.merchant_id == merchant_id)
    for merchant, program_id, stamps, n in conn.execute(
        held.group_by(b.merchant_id, b.program_id, b.stamps)
    ):
        outs[merchant].holdings[(program_id, stamps)] += n
    return outs, cards


def _has_funnel(conn: Connection) -> bool:
    """Whether the database is at the funnel's migration or later (an older migration's rebuild
    runs today's code)."""
    return bool(inspect(conn).has_table(funnel_table.name))


def _carried(
    conn: Connection, merchant_id: int | None
) -> tuple[dict[tuple[int, str], int], list[tuple[int, int, int]]]:
    """The sources in the card rows, and the poster's counts: (merchant, day, cards)."""
    if not _has_funnel(conn):
        return {}, []
    f = funnel_table.c
    cards = select(_c.merchant_id, _c.holder, _c.source).where(_c.source != 0)
    posters = select(f.merchant_id, f.day, f.cards).where(f.step == POSTER)
    if merchant_id is not None:
        cards = cards.where(_c.merchant_id == merchant_id)
        posters = posters.where(f.merchant_id == merchant_id)
    sources = {(m, holder): source for m, holder, source in conn.execute(cards)}
    return sources, [(m, day, n) for m, day, n in conn.execute(posters)]


def _histories(
    conn: Connection, merchant_id: int | None, loyal: bool = True
) -> Iterator[tuple[tuple[int, str], list[Entry]]]:
    """Every card's ledger history, one card at a time (streamed, in index order); `loyal`:
    with the bonuses' promotions (the loyalty migration adds the column)."""
    columns = _ENTRY_COLUMNS if loyal else _ENTRY_COLUMNS[:-1]
    query = select(_ledger.c.merchant_id, _ledger.c.holder, *columns).order_by(
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
