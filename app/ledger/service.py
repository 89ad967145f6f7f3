"""Ledger writes on a SQLAlchemy Core connection: stamp, redeem, void.

Every rule is decided before the first write of a command, and every balance change is a
conditional statement, so concurrent writers (threads, processes, app instances) can neither
lose an update nor drive a balance below zero. Nothing here reads the ledger's history except
the single entry a void names: the stamp path costs the same however long the ledger grows.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache, cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col
from sqlmodel import select as select_rows

from app.claims.models import ClaimCode
from app.db import Prepared, in_list, in_values
from app.errors import AppError, Conflict, NotFound, Unprocessable
from app.ledger import exceptions
from app.ledger.models import Balance, IdempotencyRecord, LedgerEntry, new_entry_id
from app.ledger.projections import forget_holder, record_entries
from app.ledger.schemas import CardBalanceOut
from app.loyalty import rules
from app.loyalty.models import Promotion, RewardLevel, Tier
from app.merchants.exceptions import DeviceRevoked, UnknownDevice
from app.merchants.models import Device, Merchant, Program
from app.tokens.exceptions import CardDeleted, UnknownCard
from app.tokens.models import Card

balance = Balance.__table__  # type: ignore[attr-defined]
ledger = LedgerEntry.__table__  # type: ignore[attr-defined]
idempotency = IdempotencyRecord.__table__  # type: ignore[attr-defined]
device_table = Device.__table__  # type: ignore[attr-defined]
program_table = Program.__table__  # type: ignore[attr-defined]
card_table = Card.__table__  # type: ignore[attr-defined]
merchant_table = Merchant.__table__  # type: ignore[attr-defined]
promotion_table = Promotion.__table__  # type: ignore[attr-defined]
tier_table = Tier.__table__  # type: ignore[attr-defined]
level_table = RewardLevel.__table__  # type: ignore[attr-defined]

# A ledger entry's id: 32 hex digits (new_entry_id).
ENTRY_ID = re.compile(r"[0-9a-f]{32}")
# What counts as a visit (feedback opens after one): a stamp or a redemption not undone.
VISIT_KINDS = ("stamp", "redemption")
# Kinds that move a card's stamps without a cashier's scan: bonuses of promotions and tiers
# (undone with their stamp), expiry after months away, and the owner's rescaling.
BONUS, EXPIRY = "bonus", "expiry"
# A cooldown reset to this instant lets an undone stamp be stamped again at once.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Operation = Literal["stamp", "redeem", "void", "claim", "ping"]


@dataclass(frozen=True)
class Command:
    """One ledger write as a device asked for it, already authenticated and parsed."""

    op: Operation
    merchant_id: int
    device_id: int
    now: datetime
    holder: str | None = None
    card_ref: str | None = None
    program_id: int | None = None
    count: int = 1
    entry_id: str | None = None
    idempotency_key: str | None = None
    fingerprint: str = ""
    undo_window_seconds: int = 600
    # op "claim": the keyed hash of the claim code being redeemed for stamps.
    claim_hash: str | None = None
    # op "redeem": a reward level of the program (None: its main reward).
    reward_id: int | None = None


@dataclass
class Outcome:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False
    # The body as the response sends it: serialised once, for the answer and its replays.
    content: bytes | None = None


# How an outcome's body is sent and kept for replays (an encoder made once, not per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _serialised(body: dict[str, Any]) -> str:
    return _ENCODER.encode(body)


def _balance_upsert(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO UPDATE … WHERE <cooldown and daily cap allow it> RETURNING."""
    make_insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    n: Any = bindparam("n")
    # n: the cashier's stamps (today's cap counts them); earned: with the bonuses that depend on
    # the time alone, which are known before the row is (see _levers).
    earned: Any = bindparam("earned")
    now = bindparam("now", type_=balance.c.last_stamp_at.type)
    today = bindparam("today", type_=balance.c.stamp_day.type)
    stmt = make_insert(balance).values(
        merchant_id=bindparam("merchant_id"),
        program_id=bindparam("program_id"),
        holder=bindparam("holder"),
        stamps=earned,
        lifetime_stamps=earned,
        redeemed=0,
        visits=1,
        first_visit_at=now,
        last_visit_at=now,
        last_stamp_at=now,
        stamp_day=today,
        day_stamps=n,
        previous_visit_at=None,
        status_stamps=earned,
    )
    b = balance.c
    stmt = stmt.on_conflict_do_update(
        index_elements=[b.merchant_id, b.program_id, b.holder],
        set_={
            "stamps": b.stamps + earned,
            "lifetime_stamps": b.lifetime_stamps + earned,
            "visits": b.visits + 1,
            "last_visit_at": now,
            "last_stamp_at": now,
            "stamp_day": today,
            "day_stamps": case((b.stamp_day == today, b.day_stamps + n), else_=n),
            # Every right-hand side reads the row as it was: the visit before this one. A row
            # whose stamps were all undone (visits 0) has seen no visit: this one is the first.
            "first_visit_at": case((b.visits == 0, now), else_=b.first_visit_at),
            "previous_visit_at": case((b.visits == 0, null()), else_=b.last_visit_at),
            # Status starts again after the shop's lapse (a cutoff at the epoch: never).
            "status_stamps": case(
                (b.last_visit_at < bindparam("lapse_cutoff", type_=b.last_visit_at.type), earned),
                else_=b.status_stamps + earned,
            ),
        },
        where=and_(
            b.last_stamp_at <= bindparam("cooldown_cutoff", type_=b.last_stamp_at.type),
            or_(
                bindparam("cap") == literal(0),
                b.stamp_day != today,
                b.day_stamps + n <= bindparam("cap"),
            ),
        ),
    )
    return stmt.returning(
        b.stamps, b.lifetime_stamps, b.redeemed, b.visits, b.first_visit_at,
        b.previous_visit_at, b.status_stamps,
    )  # fmt: skip


_UPSERTS = {name: Prepared(_balance_upsert(name)) for name in ("sqlite", "postgresql")}

# UPDATE statements may not reuse a column's name for a bind parameter, hence the k_ prefix.
_KEY = and_(
    balance.c.merchant_id == bindparam("k_merchant_id"),
    balance.c.program_id == bindparam("k_program_id"),
    balance.c.holder == bindparam("k_holder"),
)
_REDEEM = Prepared(
    update(balance)
    .where(_KEY, balance.c.stamps >= bindparam("required"))
    .values(
        stamps=balance.c.stamps - bindparam("required"),
        redeemed=balance.c.redeemed + 1,
        last_visit_at=bindparam("now", type_=balance.c.last_visit_at.type),
    )
    .returning(balance.c.stamps)
)
# Undoing the card's latest stamp reopens the cooldown and gives the stamps back to today's cap;
# undoing an older one must not do either, or an undo would let a card be stamped twice in a row.
_stamped_at: Any = bindparam("stamped_at", type_=balance.c.last_stamp_at.type)
_stamped_day: Any = bindparam("stamped_day", type_=balance.c.stamp_day.type)
# n: the stamp and its bonuses; scanned: the stamp alone (all that today's cap counted). An undone
# stamp is no visit: undoing the latest one makes the visit before it the latest again, so
# win-back, anniversary, expiry and lapse see the card as it was (and a first visit undone
# leaves visits at 0: the next stamp is a first visit again, welcome included).
_VOID_STAMP = (
    update(balance)
    .where(_KEY, balance.c.stamps >= bindparam("n"))
    .values(
        stamps=balance.c.stamps - bindparam("n"),
        lifetime_stamps=balance.c.lifetime_stamps - bindparam("n"),
        status_stamps=case(
            (balance.c.status_stamps >= bindparam("n"), balance.c.status_stamps - bindparam("n")),
            else_=0,
        ),
        visits=case((balance.c.visits > 0, balance.c.visits - 1), else_=0),
        last_visit_at=case(
            (
                balance.c.last_visit_at == _stamped_at,
                func.coalesce(balance.c.previous_visit_at, balance.c.last_visit_at),
            ),
            else_=balance.c.last_visit_at,
        ),
        last_stamp_at=case(
            (
                balance.c.last_stamp_at == _stamped_at,
                bindparam("epoch", type_=balance.c.last_stamp_at.type),
            ),
            else_=balance.c.last_stamp_at,
        ),
        day_stamps=case(
            (balance.c.stamp_day != _stamped_day, balance.c.day_stamps),
            (
                balance.c.day_stamps >= bindparam("scanned"),
                balance.c.day_stamps - bindparam("scanned"),
            ),
            else_=0,
        ),
    )
    .returning(balance.c.stamps)
)
_VOID_REDEMPTION = (
    update(balance)
    .where(_KEY, balance.c.redeemed >= 1)
    .values(stamps=balance.c.stamps + bindparam("n"), redeemed=balance.c.redeemed - 1)
    .returning(balance.c.stamps)
)
# Expiry and bonuses after a stamp, in one statement: d_stamps to the stamps, d_earned (the
# bonuses) also to what the card has earned here.
_ADJUST = Prepared(
    update(balance)
    .where(_KEY, balance.c.stamps + bindparam("d_stamps") >= 0)
    .values(
        stamps=balance.c.stamps + bindparam("d_stamps"),
        lifetime_stamps=balance.c.lifetime_stamps + bindparam("d_earned"),
        status_stamps=balance.c.status_stamps + bindparam("d_earned"),
    )
    .returning(balance.c.stamps)
)
# The holder's other programs at the shop: its state at the whole shop, for shops with several
# programs (closed ones too: their visits were visits here, but their stamps count no more).
_SELECT_OTHER_BALANCES = (
    select(
        balance.c.first_visit_at,
        balance.c.last_visit_at,
        case((program_table.c.closed_at.is_(None), balance.c.status_stamps), else_=0).label(
            "status_stamps"
        ),
    )
    .join(program_table, program_table.c.id == balance.c.program_id)
    .where(
        balance.c.holder == bindparam("k_holder"),
        balance.c.merchant_id == bindparam("k_merchant_id"),
        balance.c.program_id != bindparam("k_program_id"),
        balance.c.visits > 0,
    )
)
_SPEND = (
    update(promotion_table)
    .where(
        promotion_table.c.id == bindparam("k_id"),
        promotion_table.c.spent + bindparam("n") <= promotion_table.c.budget,
    )
    .values(spent=promotion_table.c.spent + bindparam("n"))
)
_REFUND = (
    update(promotion_table)
    .where(promotion_table.c.id == bindparam("k_id"), promotion_table.c.budget > 0)
    .values(
        spent=case(
            (promotion_table.c.spent >= bindparam("n"), promotion_table.c.spent - bindparam("n")),
            else_=0,
        )
    )
)
_SELECT_BONUSES = select(ledger.c.id, ledger.c.delta, ledger.c.promotion_id).where(
    ledger.c.for_entry_id == bindparam("entry_id"), ledger.c.kind == BONUS
)
_SELECT_BALANCE = select(
    balance.c.stamps, balance.c.last_stamp_at, balance.c.stamp_day, balance.c.day_stamps
).where(_KEY)
_SELECT_DEVICE = Prepared(
    select(device_table.c.merchant_id, device_table.c.revoked_at).where(
        device_table.c.id == bindparam("device_id")
    )
)


@cache
def _select_cards(size: int) -> Prepared:
    return Prepared(
        select(
            card_table.c.ref,
            card_table.c.deleted_day,
            card_table.c.printed,
            card_table.c.created_day,
        ).where(in_list(card_table.c.ref, size))
    )


@cache
def _select_idempotency(size: int) -> Prepared:
    i = idempotency.c
    return Prepared(
        select(i.key, i.fingerprint, i.status_code, i.response).where(
            i.merchant_id == bindparam("merchant_id"), in_list(i.key, size)
        )
    )


def _cards(conn: Connection, refs: list[str]) -> list[Any]:
    values = in_values(refs)
    return _select_cards(len(values)).all(conn, values)


def _idempotency(conn: Connection, merchant_id: int, keys: list[str]) -> list[Any]:
    values = in_values(keys)
    return _select_idempotency(len(values)).all(conn, {"merchant_id": merchant_id, **values})


_PROGRAM_COLUMNS = (
    program_table.c.id,
    program_table.c.merchant_id,
    program_table.c.name,
    program_table.c.stamps_required,
    program_table.c.reward_text,
    program_table.c.max_stamps_per_scan,
    program_table.c.cooldown_seconds,
    program_table.c.daily_cap,
    program_table.c.active,
    program_table.c.expire_months,
    program_table.c.archived_at,
    program_table.c.closed_at,
    merchant_table.c.timezone,
    merchant_table.c.tier_lapse_months,
)
_PROGRAMS = program_table.join(merchant_table, merchant_table.c.id == program_table.c.merchant_id)
_SELECT_PROGRAM = Prepared(
    select(*_PROGRAM_COLUMNS)
    .select_from(_PROGRAMS)
    .where(
        program_table.c.merchant_id == bindparam("merchant_id"),
        program_table.c.id == bindparam("program_id"),
    )
)
_SELECT_DEFAULT_PROGRAM = Prepared(
    select(*_PROGRAM_COLUMNS)
    .select_from(_PROGRAMS)
    .where(
        program_table.c.merchant_id == bindparam("merchant_id"),
        program_table.c.closed_at.is_(None),
    )
    .order_by(program_table.c.active.desc(), program_table.c.id)
    .limit(1)
)
# The running promotions, and those with a hold-out whatever their state (their trial counts
# returns for a while after they end: app.analytics.holdout).
_SELECT_PROMOTIONS = (
    select(promotion_table)
    .where(
        promotion_table.c.merchant_id == bindparam("merchant_id"),
        or_(promotion_table.c.ended_at.is_(None), promotion_table.c.holdout_percent > 0),
    )
    .order_by(promotion_table.c.id)
)
_SELECT_TIERS = select(tier_table).where(tier_table.c.merchant_id == bindparam("merchant_id"))
# The budgets of these merchants' promotions, row-locked in id order (PostgreSQL): the running
# ones, or (True) ended ones too.
_LOCK_BUDGETS = {
    ended: select(promotion_table.c.id)
    .where(
        promotion_table.c.merchant_id.in_(bindparam("ids", expanding=True)),
        promotion_table.c.budget > 0,
        *([] if ended else [promotion_table.c.ended_at.is_(None)]),
    )
    .order_by(promotion_table.c.id)
    .with_for_update()
    for ended in (False, True)
}
# Closed programs too: a card whose visits here were all in a closed one is no new customer.
_COUNT_PROGRAMS = select(func.count()).where(
    program_table.c.merchant_id == bindparam("merchant_id")
)
_SELECT_LEVEL = select(level_table.c.id, level_table.c.stamps, level_table.c.reward_text).where(
    level_table.c.merchant_id == bindparam("merchant_id"),
    level_table.c.program_id == bindparam("program_id"),
    level_table.c.id == bindparam("reward_id"),
)
_SELECT_ENTRIES = select(
    ledger.c.id,
    ledger.c.merchant_id,
    ledger.c.program_id,
    ledger.c.holder,
    ledger.c.kind,
    ledger.c.delta,
    ledger.c.created_at,
).where(ledger.c.id.in_(bindparam("ids", expanding=True)))
_SELECT_VOIDED = select(ledger.c.id).where(ledger.c.voids_entry_id == bindparam("entry_id"))
_INSERT_ENTRY = Prepared(insert(ledger))
_INSERT_IDEMPOTENCY = Prepared(insert(idempotency))


def _key(merchant_id: int, program_id: int, holder: str | None) -> dict[str, Any]:
    return {"k_merchant_id": merchant_id, "k_program_id": program_id, "k_holder": holder}


_MISSING = object()


@dataclass
class Lookups:
    """Device and program rows as a batch found them; a later batch may start from them while
    nothing else has written to the database (the ledger writer checks that)."""

    devices: dict[int, Any] = field(default_factory=dict)
    programs: dict[tuple[int, int | None], Any] = field(default_factory=dict)
    levers: dict[int, "Levers"] = field(default_factory=dict)


@dataclass
class Levers:
    """A merchant's running promotions, its tiers, and how many programs it has (closed too)."""

    promotions: list[Any]
    tiers: list[Any]
    programs: int
    held: list[Any] = field(default_factory=list)  # with a hold-out, ended ones too

    @property
    def any(self) -> bool:
        return bool(self.promotions or self.tiers)

    @cached_property
    def timed(self) -> list[Any]:
        """Promotions whose bonus depends on the time alone and has no budget to spend: known
        before the stamp's balance row is, so booked with it in one statement."""
        return [p for p in self.promotions if p.kind in rules.TIME_ONLY and p.budget == 0]

    @cached_property
    def timed_holdout(self) -> bool:
        return any(p.holdout_percent > 0 for p in self.timed)

    @cached_property
    def timed_seen(self) -> dict[tuple[int, datetime, int], list[tuple[Any, rules.Bonus]]]:
        """Timed bonuses by (program, second, count), for promotions without a hold-out."""
        return {}

    @cached_property
    def rest(self) -> list[Any]:
        """The promotions decided from the row the stamp wrote."""
        timed = {p.id for p in self.timed}
        return [p for p in self.promotions if p.id not in timed]

    @cached_property
    def order(self) -> dict[int | None, int]:
        """Bonuses are listed in the promotions' order (by id), a tier's perk last."""
        return {p.id: i for i, p in enumerate(self.promotions)}


class Batch:
    """The commands of one transaction.

    Lookups that every command needs (device, program, card, idempotency key) are made once for
    the whole batch, and the new ledger entries and idempotency records are written together by
    flush(); only the balance change itself is one statement per command. The caller commits.
    """

    def __init__(
        self, conn: Connection, commands: list[Command], lookups: Lookups | None = None
    ) -> None:
        self.conn = conn
        lookups = lookups or Lookups()
        self.devices = lookups.devices
        self.programs = lookups.programs
        self.levers_of = lookups.levers
        self.cards: dict[str, Any] = {}
        self.void_targets: dict[str, Any] = {}
        self.replays: dict[tuple[int, str], tuple[str, int, str]] = {}
        self.entries: dict[str, dict[str, Any]] = {}
        self.records: list[dict[str, Any]] = []
        self.voided: set[str] = set()
        self._prefetch(commands)

    def _prefetch(self, commands: list[Command]) -> None:
        refs = sorted({c.card_ref for c in commands if c.card_ref is not None})
        if refs:
            for row in _cards(self.conn, refs):
                self.cards[row.ref] = row
        # Ledger entries never change, so the entries that voids name can be read up front.
        entry_ids = sorted({c.entry_id for c in commands if c.entry_id is not None})
        if entry_ids:
            for row in self.conn.execute(_SELECT_ENTRIES, {"ids": entry_ids}):
                self.void_targets[row.id] = row
        wanted: dict[int, set[str]] = {}
        for c in commands:
            if c.idempotency_key is not None:
                wanted.setdefault(c.merchant_id, set()).add(c.idempotency_key)
        for merchant_id, keys in wanted.items():
            for row in _idempotency(self.conn, merchant_id, sorted(keys)):
                self.replays[(merchant_id, row.key)] = (
                    row.fingerprint,
                    row.status_code,
                    row.response,
                )

    def run_all(self, commands: list[Command]) -> list[Outcome | AppError]:
        """Apply commands in the order of the balance rows they change; answer in their order.

        Every transaction then takes its row locks in one global order, so two app instances
        writing the same balances at once wait for each other but never deadlock.
        """
        results: dict[int, Outcome | AppError] = {}
        self._lock_budgets(commands)
        for i in sorted(range(len(commands)), key=lambda i: self._balance_key(commands[i])):
            try:
                results[i] = self.run(commands[i])
            except AppError as refusal:
                results[i] = refusal
        return [results[i] for i in range(len(commands))]

    def _lock_budgets(self, commands: list[Command]) -> None:
        """Lock the budgets this batch may spend or give back before any balance row: every
        transaction then still takes its locks in one order (on SQLite a no-op). An undo gives
        back to an ended promotion's budget too, so a batch with undos locks those as well."""
        merchants = {c.merchant_id for c in commands if c.op in ("stamp", "claim", "void")}
        if merchants and self.conn.dialect.name == "postgresql":
            undoing = any(c.op == "void" for c in commands)
            self.conn.execute(_LOCK_BUDGETS[undoing], {"ids": sorted(merchants)})

    def levers(self, merchant_id: int) -> Levers:
        found = self.levers_of.get(merchant_id)
        if found is None:
            params = {"merchant_id": merchant_id}
            rows = list(self.conn.execute(_SELECT_PROMOTIONS, params))
            found = Levers(
                promotions=[p for p in rows if p.ended_at is None],
                held=[p for p in rows if p.holdout_percent > 0],
                tiers=list(self.conn.execute(_SELECT_TIERS, params)),
                programs=int(self.conn.execute(_COUNT_PROGRAMS, params).scalar() or 0),
            )
            self.levers_of[merchant_id] = found
        return found

    def _balance_key(self, cmd: Command) -> tuple[int, int, str]:
        """The balance row a command will change, as far as it is known before it runs."""
        if cmd.op == "void":
            entry = self.void_target(cmd.merchant_id, cmd.entry_id)
            return (cmd.merchant_id, entry.program_id, entry.holder) if entry else (0, 0, "")
        try:
            program = self.program(cmd.merchant_id, cmd.program_id)
        except AppError:
            return (0, 0, "")
        return (cmd.merchant_id, program.id, cmd.holder or "")

    def run(self, cmd: Command) -> Outcome:
        """Apply one command; a refusal is raised before it has written anything."""
        self._check_device(cmd)
        marker = None
        if cmd.idempotency_key is not None:
            marker = (cmd.merchant_id, cmd.idempotency_key)
            replay = self._replay(cmd, marker)
            if replay is not None:
                return replay
        try:
            outcome = self._apply(cmd)
        except AppError:
            # Another instance may have committed this very key while this one waited for the
            # balance row, and its write is what refused ours (cooldown, no reward left, already
            # undone): this request is a retry of that one and gets its answer.
            if marker is None or not self._reload_replay(marker):
                raise
            replay = self._replay(cmd, marker)
            assert replay is not None
            return replay
        response = _serialised(outcome.body)
        outcome.content = response.encode()
        if marker is not None:
            self.replays[marker] = (cmd.fingerprint, outcome.status, response)
            self.records.append(
                {
                    "merchant_id": cmd.merchant_id,
                    "key": cmd.idempotency_key,
                    "fingerprint": cmd.fingerprint,
                    "status_code": outcome.status,
                    "response": response,
                    "created_at": cmd.now,
                }
            )
        return outcome

    def _apply(self, cmd: Command) -> Outcome:
        if cmd.op == "stamp":
            return _stamp(self, cmd)
        if cmd.op == "redeem":
            return _redeem(self, cmd)
        if cmd.op == "claim":
            return _claim(self, cmd)
        return _void(self, cmd)

    def flush(self) -> None:
        """Write the batch's new ledger entries and idempotency records."""
        if self.entries:
            entries = list(self.entries.values())
            _INSERT_ENTRY.many(self.conn, entries)
            # The dashboard's rollups move with the ledger, in the same transaction.
            held = {m: levers.held for m, levers in self.levers_of.items()}
            record_entries(self.conn, entries, self.programs.values(), held)
            self.entries = {}
        if self.records:
            _INSERT_IDEMPOTENCY.many(self.conn, self.records)
            self.records = []

    def _check_device(self, cmd: Command) -> None:
        row = self.devices.get(cmd.device_id)
        if row is None:
            row = _SELECT_DEVICE.first(self.conn, {"device_id": cmd.device_id})
            self.devices[cmd.device_id] = row if row is not None else _MISSING
        if row is None or row is _MISSING or row.merchant_id != cmd.merchant_id:
            raise UnknownDevice(challenge=False)
        if row.revoked_at is not None:
            raise DeviceRevoked(challenge=False)

    def _replay(self, cmd: Command, marker: tuple[int, str]) -> Outcome | None:
        found = self.replays.get(marker)
        if found is None:
            return None
        fingerprint, status_code, response = found
        if fingerprint != cmd.fingerprint:
            raise Unprocessable(
                "This Idempotency-Key was already used for a different request.",
                title="Idempotency-Key reused",
                code="idempotency-mismatch",
            )
        return Outcome(
            status=status_code,
            body=json.loads(response),
            headers={"Idempotent-Replayed": "true"},
            replayed=True,
            content=response.encode(),
        )

    def _reload_replay(self, marker: tuple[int, str]) -> bool:
        merchant_id, key = marker
        rows = _idempotency(self.conn, merchant_id, [key])
        if not rows:
            return False
        row = rows[0]
        self.replays[marker] = (row.fingerprint, row.status_code, row.response)
        return True

    def void_target(self, merchant_id: int, entry_id: str | None) -> Any:
        """The entry a void names, if it exists at this merchant."""
        if entry_id is None:
            return None
        if entry_id not in self.void_targets:
            row = self.conn.execute(_SELECT_ENTRIES, {"ids": [entry_id]}).first()
            self.void_targets[entry_id] = row
        entry = self.void_targets[entry_id]
        return entry if entry is not None and entry.merchant_id == merchant_id else None

    def check_card(self, card_ref: str | None) -> None:
        if card_ref is None:
            raise UnknownCard()
        if card_ref not in self.cards:
            rows = _cards(self.conn, [card_ref])
            self.cards[card_ref] = rows[0] if rows else _MISSING
        card = self.cards[card_ref]
        if card is _MISSING:
            raise UnknownCard()
        if card.deleted_day is not None:
            raise CardDeleted()

    def program(self, merchant_id: int, program_id: int | None) -> Any:
        key = (merchant_id, program_id)
        if key not in self.programs:
            if program_id is None:
                params: dict[str, Any] = {"merchant_id": merchant_id}
                row = _SELECT_DEFAULT_PROGRAM.first(self.conn, params)
            else:
                params = {"merchant_id": merchant_id, "program_id": program_id}
                row = _SELECT_PROGRAM.first(self.conn, params)
            self.programs[key] = row
        row = self.programs[key]
        if row is None:
            raise NotFound("This shop has no such stamp program.", code="unknown-program")
        return row

    def add_entry(self, cmd: Command, program_id: int, holder: str, **kw: Any) -> str:
        entry_id = new_entry_id(cmd.now)
        self.entries[entry_id] = {
            "id": entry_id,
            "merchant_id": cmd.merchant_id,
            "program_id": program_id,
            "holder": holder,
            "device_id": cmd.device_id,
            "idempotency_key": cmd.idempotency_key,
            "created_at": cmd.now,
            "voids_entry_id": None,
            "for_entry_id": None,
            "promotion_id": None,
            "reward_id": None,
            **kw,
        }
        return entry_id


def run_command(conn: Connection, cmd: Command) -> Outcome:
    """Apply one command inside the caller's transaction."""
    batch = Batch(conn, [cmd])
    batch._lock_budgets([cmd])  # the writer's lock order, also for a command run alone
    outcome = batch.run(cmd)
    batch.flush()
    return outcome


def _result(entry_id: str, kind: str, program: Any, stamps: int, delta: int) -> Outcome:
    required = program.stamps_required
    return Outcome(
        status=201,
        body={
            "entry_id": entry_id,
            "kind": kind,
            "delta": delta,
            "stamps": stamps,
            "rewards_available": stamps // required,
            "program": {
                "id": program.id,
                "name": program.name,
                "stamps_required": required,
                "reward": program.reward_text,
            },
        },
    )


def _stamp(batch: Batch, cmd: Command) -> Outcome:
    conn = batch.conn
    batch.check_card(cmd.card_ref)
    program = batch.program(cmd.merchant_id, cmd.program_id)
    if program.closed_at is not None or program.archived_at is not None:
        raise _ended(program)
    if not program.active:
        raise Conflict(
            "This stamp program is paused; the shop owner can resume it.",
            title="Program paused",
            code="program-paused",
        )
    if cmd.count > program.max_stamps_per_scan:
        raise Unprocessable(
            f"At most {program.max_stamps_per_scan} stamps per scan in this program.",
            title="Too many stamps",
            code="too-many-stamps",
        )
    if program.daily_cap and cmd.count > program.daily_cap:
        raise exceptions.daily_cap(program.daily_cap)
    key = _key(cmd.merchant_id, program.id, cmd.holder)
    today = cmd.now.date()
    levers = batch.levers(cmd.merchant_id)
    timed = _timed_bonuses(cmd, program, levers) if levers.timed else []
    row = _UPSERTS[conn.dialect.name].first(
        conn,
        {
            "merchant_id": cmd.merchant_id,
            "program_id": program.id,
            "holder": cmd.holder,
            "n": cmd.count,
            "earned": cmd.count + sum(bonus.stamps for _, bonus in timed),
            "now": cmd.now,
            "today": today,
            "cap": program.daily_cap,
            "cooldown_cutoff": cmd.now - timedelta(seconds=program.cooldown_seconds),
            "lapse_cutoff": months_before(cmd.now, program.tier_lapse_months),
        },
    )
    if row is None:
        raise _why_refused(conn, key, program, cmd)
    # What the card row says, for the rollups' source of a first visit here (not inserted).
    card = batch.cards[str(cmd.card_ref)]
    entry_id = batch.add_entry(
        cmd, program.id, str(cmd.holder), kind="stamp", delta=cmd.count,
        card_printed=card.printed, card_created_day=card.created_day,
    )  # fmt: skip
    stamps, granted = _levers(batch, cmd, program, row, entry_id, levers, timed)
    outcome = _result(entry_id, "stamp", program, stamps, cmd.count)
    outcome.body["bonus"] = granted
    return outcome


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (the month's last day when it is
    shorter); the epoch for 0 (never)."""
    return EPOCH if months <= 0 else months_after(moment, -months)


def _timed_bonuses(cmd: Command, program: Any, levers: Levers) -> list[tuple[Any, rules.Bonus]]:
    """The bonuses of the promotions that depend on the time alone (Levers.timed). Without a
    hold-out they are the same for every card stamped in the same second with the same count:
    a batch works them out once."""
    if levers.timed_holdout:
        return _timed(cmd, program, levers)
    # Multipliers and campaigns turn on and off at whole minutes (of the shop's day and date):
    # the stamps of one minute share their bonuses.
    key = (program.id, cmd.now.replace(second=0, microsecond=0), cmd.count)
    found = levers.timed_seen.get(key)
    if found is None:
        if len(levers.timed_seen) > 64:
            levers.timed_seen.clear()
        found = levers.timed_seen[key] = _timed(cmd, program, levers)
    return list(found)


def _timed(cmd: Command, program: Any, levers: Levers) -> list[tuple[Any, rules.Bonus]]:
    at = cmd.now.astimezone(_zone(program.timezone))
    visit = rules.Visit(
        at=at, count=cmd.count, first_here=False, first_visit_at=None, previous_visit_at=None,
        status_stamps=0,
    )  # fmt: skip
    return rules.bonuses(
        promotions=levers.timed, tiers=(), visit=visit, holder=str(cmd.holder),
        program_id=program.id,
    )  # fmt: skip


def _levers(
    batch: Batch,
    cmd: Command,
    program: Any,
    row: Any,
    entry_id: str,
    levers: Levers,
    timed: list[tuple[Any, rules.Bonus]],
) -> tuple[int, list[dict[str, Any]]]:
    """Expiry and bonuses right after a stamp, in its transaction; the card's stamps after them
    and the bonuses granted. Decided from the balance row the stamp just wrote (its visit
    before this one, its first visit, its stamps towards status), plus, at a shop with several
    programs, the card's other balance rows there; never from the ledger's history. The timed
    bonuses are in the row already (the upsert added them); they are booked here."""
    stamps = row.stamps
    if not levers.any and not program.expire_months:
        return stamps, []
    early = sum(bonus.stamps for _, bonus in timed)
    visit = _visit(batch, cmd, program, row, levers, early) if _decides(levers, row) else None
    # Stamps expire after months without a visit at the shop (in any of its programs).
    away_since = (visit.previous_visit_at if visit else _moment(row.previous_visit_at)) or cmd.now
    expired = (
        stamps - cmd.count - early
        if away_since < months_before(cmd.now, program.expire_months)
        else 0
    )
    granted: list[dict[str, Any]] = []
    earned = 0
    if levers.any:
        holder = str(cmd.holder)
        later: list[tuple[Any, rules.Bonus]] = []
        if visit:
            later = rules.bonuses(
                promotions=levers.rest, tiers=levers.tiers, visit=visit, holder=holder,
                program_id=program.id,
            )  # fmt: skip
        # (promotion, bonus, whether the upsert added it already), in the promotions' order.
        found = [(p, b, True) for p, b in timed] + [(p, b, False) for p, b in later]
        if len(found) > 1:
            last = len(levers.promotions)
            found.sort(key=lambda pair: levers.order.get(pair[1].promotion_id, last))
        for promotion, bonus, in_row in found:
            if promotion is not None and promotion.budget > 0:
                spend = {"k_id": promotion.id, "n": bonus.stamps}
                if not batch.conn.execute(_SPEND, spend).rowcount:
                    continue  # the budget is spent
            batch.add_entry(
                cmd, program.id, holder, kind=BONUS, delta=bonus.stamps, idempotency_key=None,
                for_entry_id=entry_id, promotion_id=bonus.promotion_id,
            )  # fmt: skip
            if not in_row:
                earned += bonus.stamps
            granted.append(
                {"promotion_id": bonus.promotion_id, "title": bonus.title, "stamps": bonus.stamps}
            )
    if expired > 0:
        batch.add_entry(
            cmd, program.id, str(cmd.holder), kind=EXPIRY, delta=-expired, idempotency_key=None
        )
    if expired > 0 or earned > 0:
        params = {**_key(cmd.merchant_id, program.id, cmd.holder)}
        params.update(d_stamps=earned - expired, d_earned=earned)
        after = _ADJUST.first(batch.conn, params)
        assert after is not None  # the stamp's own row, locked by this transaction
        stamps = after.stamps
    return stamps, granted


def _decides(levers: Levers, row: Any) -> bool:
    """Whether the promotions and tiers decided from the row can give this stamp anything: a
    shop running only a welcome bonus (besides timed ones) has nothing to decide for a card
    that has been here before, the most common stamp of all."""
    if levers.tiers or levers.programs > 1:
        return True
    return any(p.kind != "welcome" or row.previous_visit_at is None for p in levers.rest)


def _moment(value: Any) -> Any:
    """A moment as a Prepared statement returned it (SQLite: text in UTC), as a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _visit(
    batch: Batch, cmd: Command, program: Any, row: Any, levers: Levers, early: int
) -> rules.Visit:
    """The visit as the promotions and tiers see it: the card's state at the whole shop before
    it (the row holds the stamp and its `early` timed bonuses already)."""
    first_here = row.previous_visit_at is None
    first_visit_at = _moment(row.first_visit_at)
    previous = _moment(row.previous_visit_at)
    status = row.status_stamps - cmd.count - early
    if levers.programs > 1:
        lapse = months_before(cmd.now, program.tier_lapse_months)
        for other in batch.conn.execute(
            _SELECT_OTHER_BALANCES, _key(cmd.merchant_id, program.id, cmd.holder)
        ):
            first_here = False
            first_visit_at = min(first_visit_at, other.first_visit_at)
            last = other.last_visit_at
            previous = last if previous is None else max(previous, last)
            if other.last_visit_at >= lapse:
                status += other.status_stamps
    zone = _zone(program.timezone)
    return rules.Visit(
        at=cmd.now.astimezone(zone),
        count=cmd.count,
        first_here=first_here,
        first_visit_at=first_visit_at,
        previous_visit_at=previous,
        status_stamps=max(status, 0),
    )


@cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _ended(program: Any) -> Conflict:
    if program.closed_at is not None:
        return Conflict(
            "This stamp program was closed by the shop.", title="Program closed",
            code="program-closed",
        )  # fmt: skip
    return Conflict(
        "This stamp program has ended; rewards already collected can still be redeemed.",
        title="Program ended",
        code="program-ended",
    )


def _why_refused(conn: Connection, key: dict[str, Any], program: Any, cmd: Command) -> Exception:
    current = conn.execute(_SELECT_BALANCE, key).one()
    over_cap = current.day_stamps + cmd.count > program.daily_cap
    if program.daily_cap and current.stamp_day == cmd.now.date() and over_cap:
        return exceptions.daily_cap(program.daily_cap)
    ago = max(int((cmd.now - current.last_stamp_at).total_seconds()), 0)
    return exceptions.cooldown(ago, program.cooldown_seconds - ago)


def _redeem(batch: Batch, cmd: Command) -> Outcome:
    conn = batch.conn
    batch.check_card(cmd.card_ref)
    program = batch.program(cmd.merchant_id, cmd.program_id)
    if program.closed_at is not None:
        raise _ended(program)
    key = _key(cmd.merchant_id, program.id, cmd.holder)
    required, reward = program.stamps_required, program.reward_text
    if cmd.reward_id is not None:
        params = {"merchant_id": cmd.merchant_id, "program_id": program.id}
        level = conn.execute(_SELECT_LEVEL, {**params, "reward_id": cmd.reward_id}).first()
        if level is None:
            raise NotFound("This program has no such reward.", code="unknown-reward")
        required, reward = level.stamps, level.reward_text
    row = _REDEEM.first(conn, {**key, "required": required, "now": cmd.now})
    if row is None:
        current = conn.execute(_SELECT_BALANCE, key).first()
        raise exceptions.no_reward_due(current.stamps if current else 0, required)
    entry_id = batch.add_entry(
        cmd, program.id, str(cmd.holder), kind="redemption", delta=-required,
        reward_id=cmd.reward_id,
    )  # fmt: skip
    outcome = _result(entry_id, "redemption", program, row.stamps, -required)
    outcome.body["reward"] = {"id": cmd.reward_id, "stamps": required, "text": reward}
    return outcome


def _void(batch: Batch, cmd: Command) -> Outcome:
    conn = batch.conn
    entry = batch.void_target(cmd.merchant_id, cmd.entry_id)
    if entry is None:
        raise NotFound("No such entry at this shop.", code="unknown-entry")
    if entry.kind not in ("stamp", "redemption"):
        raise Unprocessable("Only a stamp or a redemption can be undone.", code="not-voidable")
    if entry.created_at < cmd.now - timedelta(seconds=cmd.undo_window_seconds):
        minutes = cmd.undo_window_seconds // 60
        raise Conflict(
            f"Too late to undo: entries can be undone within {minutes} minutes.",
            title="Undo window passed",
            code="undo-window",
        )
    if _already_voided(batch, cmd):
        raise _voided()
    program = batch.program(cmd.merchant_id, entry.program_id)
    key = _key(cmd.merchant_id, entry.program_id, entry.holder)
    n = abs(entry.delta)
    bonuses: list[Any] = []
    if entry.kind == "stamp":
        # Its bonuses go with it (they were given for it), and give their budget back.
        bonuses = list(conn.execute(_SELECT_BONUSES, {"entry_id": entry.id}))
        total = n + sum(b.delta for b in bonuses)
        stamped = {"stamped_at": entry.created_at, "stamped_day": entry.created_at.date()}
        params = {**key, **stamped, "n": total, "scanned": n, "epoch": EPOCH}
        row = conn.execute(_VOID_STAMP, params).first()
    else:
        row = conn.execute(_VOID_REDEMPTION, {**key, "n": n}).first()
    if row is None:
        # A void of the same entry may have committed while this one waited for the row.
        if _already_voided(batch, cmd):
            raise _voided()
        raise Conflict(
            "These stamps were already redeemed; undo the redemption first.",
            title="Cannot undo",
            code="void-would-go-negative",
        )
    batch.voided.add(str(cmd.entry_id))
    entry_id = batch.add_entry(
        cmd,
        entry.program_id,
        entry.holder,
        kind="void",
        delta=-entry.delta,
        voids_entry_id=cmd.entry_id,
    )
    for bonus in bonuses:
        batch.add_entry(
            cmd, entry.program_id, entry.holder, kind="void", delta=-bonus.delta,
            voids_entry_id=bonus.id, idempotency_key=None,
        )  # fmt: skip
        if bonus.promotion_id is not None:
            conn.execute(_REFUND, {"k_id": bonus.promotion_id, "n": bonus.delta})
    undone = entry.delta + sum(b.delta for b in bonuses)
    outcome = _result(entry_id, "void", program, row.stamps, -undone)
    outcome.body["voids_entry_id"] = cmd.entry_id
    return outcome


def _already_voided(batch: Batch, cmd: Command) -> bool:
    if cmd.entry_id in batch.voided:
        return True
    return batch.conn.execute(_SELECT_VOIDED, {"entry_id": cmd.entry_id}).first() is not None


def _voided() -> Conflict:
    return Conflict("This entry was already undone.", title="Already undone", code="voided")


def touch_devices(conn: Connection, device_ids: set[int], now: datetime) -> None:
    """Record when devices were last seen (the merchant's device list shows it)."""
    conn.execute(
        update(device_table).where(device_table.c.id.in_(device_ids)).values(last_seen_at=now)
    )


# --- Claim codes (app/claims) -------------------------------------------------------------
# A claim is a stamp booked on the till that made the code, once. Marking the code used is a
# conditional UPDATE, so of any number of concurrent claims exactly one wins (on PostgreSQL the
# others wait for its row lock and then find the code used); the stamp and the mark commit in
# the same transaction, and a refused stamp takes the mark back before anything else runs.

claim_table = ClaimCode.__table__  # type: ignore[attr-defined]
_MARK_CLAIMED = (
    update(claim_table)
    .where(
        claim_table.c.code_hash == bindparam("k_code"),
        claim_table.c.claimed_at.is_(None),
        claim_table.c.expires_at > bindparam("now", type_=claim_table.c.expires_at.type),
    )
    .values(claimed_at=bindparam("now", type_=claim_table.c.claimed_at.type))
)
_UNMARK_CLAIMED = (
    update(claim_table)
    .where(claim_table.c.code_hash == bindparam("k_code"))
    .values(claimed_at=None, entry_id=None)
)
_SET_CLAIM_ENTRY = (
    update(claim_table)
    .where(claim_table.c.code_hash == bindparam("k_code"))
    .values(entry_id=bindparam("k_entry_id"))
)
_SELECT_CLAIM = select(claim_table.c.claimed_at, claim_table.c.entry_id).where(
    claim_table.c.code_hash == bindparam("k_code")
)
_SELECT_ENTRY_HOLDER = select(ledger.c.holder).where(
    ledger.c.merchant_id == bindparam("merchant_id"), ledger.c.id == bindparam("entry_id")
)


def _claim(batch: Batch, cmd: Command) -> Outcome:
    conn = batch.conn
    batch.check_card(cmd.card_ref)
    params = {"k_code": cmd.claim_hash, "now": cmd.now}
    if not conn.execute(_MARK_CLAIMED, params).rowcount:
        return _claim_again(batch, cmd)
    try:
        outcome = _stamp(batch, cmd)
    except AppError:
        conn.execute(_UNMARK_CLAIMED, {"k_code": cmd.claim_hash})
        raise
    conn.execute(
        _SET_CLAIM_ENTRY, {"k_code": cmd.claim_hash, "k_entry_id": outcome.body["entry_id"]}
    )
    return outcome


def _claim_again(batch: Batch, cmd: Command) -> Outcome:
    """A code that cannot be claimed: the same card retrying gets its first answer again."""
    conn = batch.conn
    row = conn.execute(_SELECT_CLAIM, {"k_code": cmd.claim_hash}).first()
    if row is None:
        raise NotFound("This code is not known.", title="Unknown code", code="unknown-claim")
    if row.claimed_at is None:
        raise exceptions.LedgerRefusal(
            "This code has expired. Ask at the till for a new one.",
            status=410,
            title="Code expired",
            code="claim-expired",
        )
    entry = batch.entries.get(row.entry_id or "")
    if entry is not None:
        holder = entry["holder"]
    else:
        params = {"merchant_id": cmd.merchant_id, "entry_id": row.entry_id}
        holder = conn.execute(_SELECT_ENTRY_HOLDER, params).scalar()
    if holder is None or holder != cmd.holder:
        raise exceptions.LedgerRefusal(
            "This code was already used. Ask at the till for a new one.",
            status=410,
            title="Code already used",
            code="claim-used",
        )
    program = batch.program(cmd.merchant_id, cmd.program_id)
    current = conn.execute(_SELECT_BALANCE, _key(cmd.merchant_id, program.id, cmd.holder)).first()
    outcome = _result(
        str(row.entry_id), "stamp", program, current.stamps if current else 0, cmd.count
    )
    outcome.body["bonus"] = []
    outcome.headers["Idempotent-Replayed"] = "true"
    outcome.replayed = True
    return outcome


# --- the owner's changes to a program -------------------------------------------------------


def scaled_stamps(stamps: int, old_required: int, new_required: int) -> int:
    """A card's stamps when the goal rises: the same share of the way, rounded in the card's
    favour, so no progress is lost and a full card stays full (5 of 10 → 6 of 12)."""
    if new_required <= old_required or stamps <= 0:
        return stamps
    return -(-stamps * new_required // old_required)


@dataclass(frozen=True)
class _Goal:
    id: int
    stamps_required: int


def adjust_balances(
    *,
    session: Session,
    merchant_id: int,
    program_id: int,
    old_required: int,
    new_required: int,
    now: datetime,
) -> int:
    """Scale every card's stamps up to a program's new goal; the number of cards changed.

    One adjustment entry per card, so the ledger still adds up to the balances, and the rollups
    move with them in the same transaction. Rows are locked in the ledger writer's order
    (merchant, program, holder), so a concurrent stamp waits instead of deadlocking.
    """
    rows = session.execute(
        select(balance.c.holder, balance.c.stamps)
        .where(
            balance.c.merchant_id == merchant_id,
            balance.c.program_id == program_id,
            balance.c.stamps > 0,
        )
        .order_by(balance.c.holder)
        .with_for_update()
    ).all()
    changes = [
        (row.holder, row.stamps, scaled_stamps(row.stamps, old_required, new_required))
        for row in rows
    ]
    changes = [c for c in changes if c[2] != c[1]]
    if not changes:
        return 0
    session.execute(
        update(balance)
        .where(
            balance.c.merchant_id == merchant_id,
            balance.c.program_id == program_id,
            balance.c.holder == bindparam("b_holder"),
            balance.c.stamps == bindparam("b_old"),
        )
        .values(stamps=bindparam("b_new")),
        [{"b_holder": h, "b_old": old, "b_new": new} for h, old, new in changes],
    )
    entries = [
        {
            "id": new_entry_id(now), "merchant_id": merchant_id, "program_id": program_id,
            "holder": h, "kind": "adjustment", "delta": new - old, "device_id": None,
            "idempotency_key": None, "voids_entry_id": None, "created_at": now,
        }
        for h, old, new in changes
    ]  # fmt: skip
    conn = session.connection()
    _INSERT_ENTRY.many(conn, entries)
    record_entries(conn, entries, [_Goal(program_id, new_required)])
    return len(changes)


# --- what other packages read and delete (none of them imports the ledger's tables) --------------

_SELECT_SHOPS = (
    select(
        balance,
        program_table.c.name.label("program_name"),
        program_table.c.stamps_required,
        program_table.c.reward_text,
        program_table.c.expire_months,
        program_table.c.archived_at,
        merchant_table.c.slug,
        merchant_table.c.name.label("merchant_name"),
        merchant_table.c.tier_lapse_months,
        merchant_table.c.accent_color,
        merchant_table.c.logo_version,
        # Whether there is anything to read for the levers (most shops have none of them).
        exists().where(level_table.c.program_id == balance.c.program_id).label("has_levels"),
        exists().where(tier_table.c.merchant_id == balance.c.merchant_id).label("has_tiers"),
        exists()
        .where(promotion_table.c.merchant_id == balance.c.merchant_id)
        .label("has_promotions"),
    )
    .join(program_table, program_table.c.id == balance.c.program_id)
    .join(merchant_table, merchant_table.c.id == balance.c.merchant_id)
    .where(
        balance.c.holder.in_(bindparam("holders", expanding=True)),
        program_table.c.closed_at.is_(None),
    )
    .order_by(balance.c.last_visit_at.desc())
)


def card_balances(db: Session | Connection, holders: Mapping[str, int]) -> list[Any]:
    """A card's balances at every merchant, given its holders (holder → merchant id), the latest
    visit first (closed programs left out): the balance's columns, then program_name,
    stamps_required, reward_text, expire_months, archived_at, slug, merchant_name,
    tier_lapse_months, accent_color, logo_version, has_levels, has_tiers and has_promotions.
    Core statements, not the ORM: the open card page asks every few seconds."""
    if not holders:
        return []
    rows = db.execute(_SELECT_SHOPS, {"holders": list(holders)}).all()
    # A holder is only meaningful at its own merchant.
    return [r for r in rows if holders.get(r.holder) == r.merchant_id]


def balances_at(*, session: Session, merchant_id: int, holder: str) -> dict[int, Balance]:
    """One card's balances at one merchant, by program id."""
    query = select_rows(Balance).where(
        col(Balance.merchant_id) == merchant_id, col(Balance.holder) == holder
    )
    return {b.program_id: b for b in session.exec(query).all()}


def card_entries(*, session: Session, holders: Mapping[str, int]) -> list[LedgerEntry]:
    """A card's ledger entries at every merchant, given its holders, oldest first."""
    if not holders:
        return []
    entries = session.exec(
        select_rows(LedgerEntry)
        .where(col(LedgerEntry.holder).in_(list(holders)))
        .order_by(col(LedgerEntry.created_at))
    ).all()
    return [e for e in entries if holders.get(e.holder) == e.merchant_id]


def latest_visit(
    *, session: Session, merchant_id: int, holder: str, since: datetime
) -> tuple[str, datetime] | None:
    """The holder's latest stamp or redemption here since then that was not undone: its entry
    id and time."""
    rows = session.execute(
        select(ledger.c.id, ledger.c.kind, ledger.c.voids_entry_id, ledger.c.created_at)
        .where(
            ledger.c.merchant_id == merchant_id,
            ledger.c.holder == holder,
            ledger.c.created_at >= since,
        )
        .order_by(ledger.c.created_at.desc())
    ).all()
    voided = {voids for _id, kind, voids, _at in rows if kind == "void" and voids}
    for entry_id, kind, _voids, at in rows:
        if kind in VISIT_KINDS and entry_id not in voided:
            return entry_id, at
    return None


def visited(*, session: Session, holders: Mapping[str, int]) -> set[int]:
    """The merchants where a card (given its holders) has a balance."""
    if not holders:
        return set()
    rows = session.execute(
        select(balance.c.merchant_id, balance.c.holder).where(balance.c.holder.in_(list(holders)))
    ).all()
    return {m for m, h in rows if holders.get(h) == m}


def recent_stamps(conn: Connection, *, merchant_id: int, since: datetime) -> list[Any]:
    """A merchant's stamp entries since then, the latest first: id, holder, created_at."""
    return list(
        conn.execute(
            select(ledger.c.id, ledger.c.holder, ledger.c.created_at)
            .where(
                ledger.c.merchant_id == merchant_id,
                ledger.c.kind == "stamp",
                ledger.c.created_at >= since,
            )
            .order_by(ledger.c.created_at.desc())
        ).all()
    )


def forget_card(*, session: Session, holders: Mapping[str, int]) -> None:
    """Delete a card's balances and ledger entries at every merchant (its holders given).

    Its entries go too: entries left without a balance would mark, at each shop, the records
    of a deleted card, and a single deletion would link its records across shops. Its share
    of every rollup goes with them (forget_holder), so each shop's figures are what they
    would be had the card never been there.
    """
    conn = session.connection()
    for holder, merchant_id in holders.items():
        mine = (balance.c.merchant_id == merchant_id, balance.c.holder == holder)
        held = conn.execute(select(balance.c.program_id, balance.c.stamps).where(*mine)).all()
        forget_holder(conn, merchant_id=merchant_id, holder=holder, held=[(p, s) for p, s in held])
        conn.execute(delete(balance).where(*mine))
        conn.execute(
            delete(ledger).where(ledger.c.merchant_id == merchant_id, ledger.c.holder == holder)
        )


def import_history(
    conn: Connection, *, balances: list[dict[str, Any]], entries: list[dict[str, Any]]
) -> None:
    """Write past balances and entries as given (the demo's months of history). The rollups are
    not kept here: rebuild_rollups() recomputes them once the whole history is in."""
    if balances:
        conn.execute(insert(balance), balances)
    if entries:
        conn.execute(insert(ledger), entries)


def till_card(
    *, session: Session, merchant_id: int, programs: list[Program], holder: str, now: datetime
) -> list[CardBalanceOut]:
    """What a till shows right after a scan: the card's stamps here per program (a paused
    program only while the card still holds stamps in it), and how long its cooldown lasts."""
    balances = balances_at(session=session, merchant_id=merchant_id, holder=holder)
    out = []
    for program in programs:
        assert program.id is not None
        found = balances.get(program.id)
        if not program.active and (found is None or found.stamps == 0):
            continue
        stamps = found.stamps if found else 0
        waited = (now - found.last_stamp_at).total_seconds() if found else None
        remaining = 0 if waited is None else max(0, int(program.cooldown_seconds - waited))
        out.append(
            CardBalanceOut(
                program_id=program.id,
                stamps=stamps,
                rewards_available=stamps // program.stamps_required,
                cooldown_remaining=remaining,
                last_stamp_at=found.last_stamp_at if found else None,
            )
        )
    return out


_SELECT_LEVELS = (
    select(
        level_table.c.id, level_table.c.program_id, level_table.c.stamps, level_table.c.reward_text
    )
    .where(level_table.c.program_id.in_(bindparam("ids", expanding=True)))
    .order_by(level_table.c.stamps)
)
_SELECT_MERCHANT_TIERS = select(tier_table).where(
    tier_table.c.merchant_id.in_(bindparam("ids", expanding=True))
)


@dataclass(frozen=True)
class Ladder:
    """Reward levels by program and tiers by merchant, for the cards a page shows."""

    levels: dict[int, list[Any]]
    tiers: dict[int, list[Any]]


def ladders(db: Session | Connection, balances: list[Any]) -> Ladder:
    """The levels and tiers that card_balances' rows need (an indexed read each, only where
    there are any)."""
    levels: dict[int, list[Any]] = {}
    tiers: dict[int, list[Any]] = {}
    ids = sorted({b.program_id for b in balances if b.has_levels})
    if ids:
        for row in db.execute(_SELECT_LEVELS, {"ids": ids}):
            levels.setdefault(row.program_id, []).append(row)
    ids = sorted({b.merchant_id for b in balances if b.has_tiers})
    if ids:
        for row in db.execute(_SELECT_MERCHANT_TIERS, {"ids": ids}):
            tiers.setdefault(row.merchant_id, []).append(row)
    return Ladder(levels, tiers)


def status_stamps(balances: list[Any], merchant_id: int, now: datetime) -> int:
    """A card's stamps towards status at a shop, from its balance rows there (see rules)."""
    return sum(
        b.status_stamps
        for b in balances
        if b.merchant_id == merchant_id
        and b.last_visit_at >= months_before(now, b.tier_lapse_months)
    )


def expires_on(row: Any, last_here: datetime) -> date | None:
    """When a balance's stamps expire if the card does not come back to the shop (None: they
    do not); last_here is its last visit there, in any program."""
    if not row.expire_months or row.stamps <= 0:
        return None
    return months_after(last_here, row.expire_months).date()


def months_after(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later (earlier if negative), on the
    month's last day when it is shorter."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    days = (date(year + (month == 12), month % 12 + 1, 1) - date(year, month, 1)).days
    return moment.replace(year=year, month=month, day=min(moment.day, days))


# --- stamps booked out: expiry after months away, and a program closed by its owner -------------


def book_out(
    conn: Connection, *, merchant_id: int, program_id: int, now: datetime, idle_since: datetime
) -> int:
    """Book out the stamps of every card in a program whose last visit at the shop, in any of
    its programs, is before idle_since (an `expiry` entry each, the rollups moved with them);
    the number of cards.

    Each balance changes only if it is still what was read, so a stamp that lands meanwhile
    keeps its card's stamps (the card just came back). Rows are locked in the ledger writer's
    order, so a concurrent stamp waits instead of deadlocking.
    """
    b, other = balance.c, balance.alias("other").c
    seen_since = exists().where(
        other.merchant_id == b.merchant_id,
        other.holder == b.holder,
        other.program_id != b.program_id,
        other.last_visit_at >= idle_since,
    )
    rows = conn.execute(
        select(b.holder, b.stamps, b.last_visit_at)
        .where(
            b.merchant_id == merchant_id,
            b.program_id == program_id,
            b.stamps > 0,
            b.last_visit_at < idle_since,
            ~seen_since,
        )
        .order_by(b.holder)
        .with_for_update(of=balance)
    ).all()
    if not rows:
        return 0
    conn.execute(
        update(balance)
        .where(
            b.merchant_id == merchant_id,
            b.program_id == program_id,
            b.holder == bindparam("b_holder"),
            b.stamps == bindparam("b_old"),
        )
        .values(stamps=0),
        [{"b_holder": r.holder, "b_old": r.stamps} for r in rows],
    )
    entries = [
        {
            "id": new_entry_id(now), "merchant_id": merchant_id, "program_id": program_id,
            "holder": r.holder, "kind": EXPIRY, "delta": -r.stamps, "device_id": None,
            "idempotency_key": None, "voids_entry_id": None, "created_at": now,
            "for_entry_id": None, "promotion_id": None, "reward_id": None,
        }
        for r in rows
    ]  # fmt: skip
    _INSERT_ENTRY.many(conn, entries)
    required = conn.execute(
        select(program_table.c.id, program_table.c.stamps_required).where(
            program_table.c.id == program_id
        )
    ).all()
    record_entries(conn, entries, required)
    return len(rows)


def expire_stamps(conn: Connection, now: datetime) -> int:
    """Book out the stamps that passed their program's expiry (the hourly housekeeping; a card
    seen earlier has them booked out at its stamp). The number of cards."""
    p = program_table.c
    programs = conn.execute(
        select(p.merchant_id, p.id, p.expire_months).where(
            p.expire_months > 0, p.closed_at.is_(None)
        )
    ).all()
    return sum(
        book_out(conn, merchant_id=m, program_id=i, now=now, idle_since=months_before(now, months))
        for m, i, months in programs
    )


def tier_at(*, session: Session, merchant_id: int, holder: str, now: datetime) -> Any | None:
    """The tier a card holds at a shop now (None: none, or the shop has no tiers)."""
    tiers = list(session.execute(_SELECT_TIERS, {"merchant_id": merchant_id}))
    if not tiers:
        return None
    lapse = session.execute(
        select(merchant_table.c.tier_lapse_months).where(merchant_table.c.id == merchant_id)
    ).scalar_one()
    since = months_before(now, lapse)
    balances = balances_at(session=session, merchant_id=merchant_id, holder=holder).values()
    status = sum(b.status_stamps for b in balances if b.last_visit_at >= since)
    return rules.tier_of(tiers, status)


def reward_levels(*, session: Session, program_ids: list[int]) -> dict[int, list[Any]]:
    """The reward levels of these programs, by program, fewest stamps first."""
    levels: dict[int, list[Any]] = {}
    if program_ids:
        for row in session.execute(_SELECT_LEVELS, {"ids": sorted(program_ids)}):
            levels.setdefault(row.program_id, []).append(row)
    return levels


# How long after a stamp the card page still shows the bonuses that came with it.
BONUS_SHOWN_SECONDS = 600
_SELECT_LATEST = (
    select(
        ledger.c.id, ledger.c.program_id, ledger.c.kind, ledger.c.delta, ledger.c.promotion_id,
        ledger.c.voids_entry_id, promotion_table.c.title,
    )
    .outerjoin(promotion_table, promotion_table.c.id == ledger.c.promotion_id)
    .where(
        ledger.c.merchant_id == bindparam("merchant_id"),
        ledger.c.holder == bindparam("holder"),
        ledger.c.created_at >= bindparam("since"),
    )
)  # fmt: skip


def latest_bonuses(
    db: Session | Connection, balances: list[Any], now: datetime
) -> dict[tuple[int, int], list[tuple[int | None, str | None, int]]]:
    """The bonuses that came with each balance's latest stamp, if it was minutes ago and not
    undone: (promotion id, its title; both None for a tier's perk; stamps) by (merchant id,
    program id). One indexed read per such balance at a shop with promotions or tiers; none for
    a card not stamped lately."""
    out: dict[tuple[int, int], list[tuple[int | None, str | None, int]]] = {}
    recent = now - timedelta(seconds=BONUS_SHOWN_SECONDS)
    for b in balances:
        if b.last_stamp_at < recent or not (b.has_promotions or b.has_tiers):
            continue
        params = {"merchant_id": b.merchant_id, "holder": b.holder, "since": b.last_stamp_at}
        rows = db.execute(_SELECT_LATEST, params).all()
        undone = {r.voids_entry_id for r in rows if r.kind == "void"}
        found = [
            (r.promotion_id, r.title, r.delta)
            for r in rows
            if r.kind == BONUS and r.program_id == b.program_id and r.id not in undone
        ]
        if found:
            out[(b.merchant_id, b.program_id)] = found
    return out
