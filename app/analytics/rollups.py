"""Ledger entries → rollup counts. Pure: no database.

A card's share of every rollup is a function of its own ledger history at one merchant. `replay`
computes it from a whole history (the rebuild, and a card whose entry was just undone);
`CardTally.add` extends it by new entries at the end of the history, which is what the ledger
writer does on every batch. Both run the same code per entry, so the rollups the writer keeps
equal the ones a rebuild computes (tests/analytics/test_rollups.py holds them to it).

Definitions: a *visit* is a card-day with stamps (a second scan the same day is the same visit),
counted at the hour and device of the day's first stamp; a card is *seen at a device* on a day
with a stamp there; an undone entry counts nowhere except in `voids`, at the time and device of
the undone entry.

Distinct cards over any span come from gaps: each visit (or day seen at a device) is counted with
the days since the same card's previous one of the same kind (0: its first), so a card was there
in [a, b) exactly once for each of them in [a, b) whose previous one lies before a. The kinds are
any visit (`visits`), a visit at the same weekday and hour (`hours`), on the same weekday
(`weekdays`), and a day seen at the same device (`devices`).
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

EPOCH = date(1970, 1, 1)
# The order of the counters in ActivityRollup (and of Rollups.activity's lists).
ACTIVITY_FIELDS = ("scans", "stamps", "visits", "redemptions", "voids", "rewards_earned")
SCANS, STAMPS, VISITS, REDEMPTIONS, VOIDS, REWARDS = range(len(ACTIVITY_FIELDS))


@dataclass(frozen=True)
class Entry:
    """The part of a ledger entry the rollups read."""

    id: str
    program_id: int
    kind: str
    delta: int
    device_id: int | None
    created_at: datetime
    voids_entry_id: str | None = None


@dataclass
class CardState:
    """A card's visit days at one merchant (None: no visit yet)."""

    first_day: int | None = None
    second_day: int | None = None
    last_day: int | None = None
    visits: int = 0
    # Last visit day per slot of the week (weekday * 24 + hour of the visit), and last day seen
    # per device (0: none): what the per-slot and per-device gaps are counted from.
    slots: dict[int, int] = field(default_factory=dict)
    devices: dict[int, int] = field(default_factory=dict)

    def recent(self) -> str:
        """slots and devices as stored in the card's rollup row (compact JSON)."""
        return encode_recent(self.slots, self.devices)


_COMPACT = json.JSONEncoder(separators=(",", ":"))


def encode_recent(slots: Mapping[int, int], devices: Mapping[int, int]) -> str:
    return _COMPACT.encode(
        {"s": {str(k): slots[k] for k in sorted(slots)},
         "d": {str(k): devices[k] for k in sorted(devices)}}
    )  # fmt: skip


def decode_recent(text: str | None) -> tuple[dict[int, int], dict[int, int]]:
    """The slots and devices of a stored card row (empty for a row without them)."""
    if not text:
        return {}, {}
    found = json.loads(text)
    return (
        {int(k): int(v) for k, v in found.get("s", {}).items()},
        {int(k): int(v) for k, v in found.get("d", {}).items()},
    )


def _counts() -> list[int]:
    return [0] * len(ACTIVITY_FIELDS)


def _counter() -> defaultdict[tuple[int, ...], int]:
    return defaultdict(int)


@dataclass
class Rollups:
    """Rollup counts: added up over cards, and subtracted to undo a card's old share."""

    activity: defaultdict[tuple[int, int, int], list[int]] = field(
        default_factory=lambda: defaultdict(_counts)
    )
    # (day, gap) -> visits.
    visits: defaultdict[tuple[int, ...], int] = field(default_factory=_counter)
    # (first month, month) -> cards.
    cohorts: defaultdict[tuple[int, ...], int] = field(default_factory=_counter)
    # (program, stamps held) -> cards: kept from balances, not from a card's visits.
    holdings: defaultdict[tuple[int, ...], int] = field(default_factory=_counter)
    # (day, hour, gap since the card's last visit at that weekday and hour) -> visits.
    hours: defaultdict[tuple[int, ...], int] = field(default_factory=_counter)
    # (day, gap since the card's last visit on that weekday) -> visits.
    weekdays: defaultdict[tuple[int, ...], int] = field(default_factory=_counter)
    # (day, device, gap since the card was last seen at that device) -> cards seen.
    devices: defaultdict[tuple[int, ...], int] = field(default_factory=_counter)

    def hold(self, program_id: int, before: int, after: int) -> None:
        """A card's stamps in a program went from before to after (0: holds none)."""
        if before != after:
            if before > 0:
                self.holdings[(program_id, before)] -= 1
            if after > 0:
                self.holdings[(program_id, after)] += 1

    def counters(self) -> dict[str, defaultdict[tuple[int, ...], int]]:
        """The single-count tables by field name (all but activity)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "activity"}

    def merge(self, other: "Rollups", sign: int = 1) -> None:
        for key, counts in other.activity.items():
            mine = self.activity[key]
            for i, n in enumerate(counts):
                mine[i] += sign * n
        for name, counter in other.counters().items():
            into = getattr(self, name)
            for counted, n in counter.items():
                into[counted] += sign * n

    def nonzero(self) -> "Rollups":
        """The same counts without the keys that add up to nothing."""
        out = Rollups()
        out.activity.update({k: v for k, v in self.activity.items() if any(v)})
        for name, counter in self.counters().items():
            getattr(out, name).update({k: v for k, v in counter.items() if v})
        return out


# --- local calendar -----------------------------------------------------------------------------


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@cache
def _offset(tz: ZoneInfo, quarter: int) -> int:
    # Zones change their offset only at quarter-hour instants: one lookup per quarter hour.
    return int(datetime.fromtimestamp(quarter * 900, tz).utcoffset().total_seconds())  # type: ignore[union-attr]


def local_slot(at: datetime, tz: ZoneInfo) -> tuple[int, int]:
    """(local day number, local hour) of an aware instant."""
    ts = int(at.timestamp())
    local = ts + _offset(tz, ts // 900)
    return local // 86_400, local % 86_400 // 3600


def day_number(d: date) -> int:
    return (d - EPOCH).days


def day_date(day: int) -> date:
    return EPOCH + timedelta(days=day)


def weekday_of(day: int) -> int:
    """0 for Monday: day 0, 1 January 1970, was a Thursday (the SQL reads (day + 3) % 7)."""
    return (day + 3) % 7


@cache
def month_of(day: int) -> int:
    d = day_date(day)
    return (d.year - 1970) * 12 + d.month - 1


def month_date(month: int) -> date:
    return date(1970 + month // 12, month % 12 + 1, 1)


def month_start(month: int) -> int:
    return day_number(month_date(month))


# --- one card -----------------------------------------------------------------------------------


class CardTally:
    """Adds one card's entries, in time order, to `out` and to the card's state."""

    def __init__(
        self,
        *,
        state: CardState,
        lifetime: dict[int, int],
        required: Mapping[int, int],
        tz: ZoneInfo,
        out: Rollups,
    ) -> None:
        self.state = state
        self.lifetime = lifetime  # lifetime stamps per program before the next entry
        self.required = required
        self.tz = tz
        self.out = out

    def slot(self, entry: Entry) -> tuple[int, int, int]:
        day, hour = local_slot(entry.created_at, self.tz)
        return day, hour, entry.device_id or 0

    def add(self, entry: Entry) -> None:
        if entry.kind == "stamp":
            self._stamp(entry)
        elif entry.kind == "bonus":
            self._bonus(entry)
        elif entry.kind == "redemption":
            self.out.activity[self.slot(entry)][REDEMPTIONS] += 1

    def undone(self, target: Entry) -> None:
        # A bonus is undone with its stamp: one undo, counted once.
        if target.kind != "bonus":
            self.out.activity[self.slot(target)][VOIDS] += 1

    def _earned(self, entry: Entry, counts: list[int]) -> None:
        counts[STAMPS] += entry.delta
        before = self.lifetime.get(entry.program_id, 0)
        after = before + entry.delta
        self.lifetime[entry.program_id] = after
        goal = self.required.get(entry.program_id, 0)
        if goal > 0:
            counts[REWARDS] += after // goal - before // goal

    def _bonus(self, entry: Entry) -> None:
        """Bonus stamps count as stamps given and towards rewards; they are no scan or visit."""
        self._earned(entry, self.out.activity[self.slot(entry)])

    def _stamp(self, entry: Entry) -> None:
        key = self.slot(entry)
        counts = self.out.activity[key]
        counts[SCANS] += 1
        self._earned(entry, counts)
        (day, hour, device), state = key, self.state
        seen = state.devices.get(device)
        if seen != day:
            self.out.devices[(day, device, _gap(day, seen))] += 1
            state.devices[device] = day
        if state.last_day == day:
            return
        counts[VISITS] += 1
        self.out.visits[(day, _gap(day, state.last_day))] += 1
        weekday = weekday_of(day)
        slot = weekday * 24 + hour
        # Every visit is in one slot, so the last on this weekday is the latest of its slots.
        on_weekday = [d for s, d in state.slots.items() if s // 24 == weekday]
        self.out.weekdays[(day, _gap(day, max(on_weekday, default=None)))] += 1
        self.out.hours[(day, hour, _gap(day, state.slots.get(slot)))] += 1
        state.slots[slot] = day
        if state.first_day is None:
            state.first_day = day
        elif state.visits == 1:
            state.second_day = day
        month = month_of(day)
        if state.last_day is None or month_of(state.last_day) != month:
            self.out.cohorts[(month_of(state.first_day), month)] += 1
        state.last_day = day
        state.visits += 1


def _gap(day: int, previous: int | None) -> int:
    return 0 if previous is None else day - previous


def in_order(entries: Iterable[Entry]) -> list[Entry]:
    # Ties within a second are broken by id, the same way wherever entries are replayed.
    return sorted(entries, key=lambda e: (e.created_at, e.id))


def replay(
    entries: Iterable[Entry], *, required: Mapping[int, int], tz: ZoneInfo
) -> tuple[Rollups, CardState]:
    """One card's whole share of the rollups, from its whole history at one merchant."""
    history = in_order(entries)
    by_id = {e.id: e for e in history}
    undone = {e.voids_entry_id for e in history if e.kind == "void"}
    out = Rollups()
    tally = CardTally(state=CardState(), lifetime={}, required=required, tz=tz, out=out)
    for entry in history:
        if entry.kind == "void":
            target = by_id.get(entry.voids_entry_id or "")
            if target is not None:
                tally.undone(target)
        elif entry.id not in undone:
            tally.add(entry)
    return out, tally.state
