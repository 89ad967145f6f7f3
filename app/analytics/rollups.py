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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from app.analytics.holdout import BONUS, PROMOTION_FIELDS, Trial, visit_counts

EPOCH = date(1970, 1, 1)
# The funnel's steps (FunnelRollup.step): a card's first visit at the shop, its second, the first
# time its lifetime stamps there reached a program's goal, its first redemption there.
FIRST_VISIT, SECOND_VISIT, FIRST_REWARD, FIRST_REDEMPTION = 1, 2, 3, 4
FUNNEL_STEPS = {
    FIRST_VISIT: "first_visit",
    SECOND_VISIT: "second_visit",
    FIRST_REWARD: "first_reward",
    FIRST_REDEMPTION: "redeemed",
}
# CardState.steps: the funnel steps past the visits that a card has reached.
REWARDED, REDEEMED = 1, 2
# Where cards come from (FunnelRollup steps from 11). POSTER is counted when a card is made from
# the shop's page; the others when a card arrives for its first visit at the shop, exactly one
# each: through a claim code, else as a printed card, else as a card made on an earlier day (at
# the shop's poster, the front page or another shop), else as a card made that same day.
POSTER, PRINTED, CLAIM, EXISTING, NEW = 11, 12, 13, 14, 15
SOURCES = {POSTER: "poster", PRINTED: "printed", CLAIM: "claim", EXISTING: "existing", NEW: "new"}
ARRIVALS = (PRINTED, CLAIM, EXISTING, NEW)
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
    promotion_id: int | None = None  # a bonus's promotion


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
    steps: int = 0  # REWARDED | REDEEMED once reached

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


def _promotion_counts() -> list[int]:
    return [0] * len(PROMOTION_FIELDS)


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
    # (day of the cards' first visit, funnel step) -> cards that reached it; and (day, source)
    # -> cards, which the ledger's projections add (a card's entries do not say its source).
    funnel: defaultdict[tuple[int, ...], int] = field(default_factory=_counter)
    # (promotion, day, held out) -> PROMOTION_FIELDS: the visits of a promotion's treated and
    # held-out cards (app.analytics.holdout), and the bonus stamps it gave.
    promotions: defaultdict[tuple[int, int, int], list[int]] = field(
        default_factory=lambda: defaultdict(_promotion_counts)
    )

    def hold(self, program_id: int, before: int, after: int) -> None:
        """A card's stamps in a program went from before to after (0: holds none)."""
        if before != after:
            if before > 0:
                self.holdings[(program_id, before)] -= 1
            if after > 0:
                self.holdings[(program_id, after)] += 1

    def counters(self) -> dict[str, defaultdict[tuple[int, ...], int]]:
        """The single-count tables by field name (all but activity and promotions)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in SEVERAL}

    def merge(self, other: "Rollups", sign: int = 1) -> None:
        for name in SEVERAL:
            into = getattr(self, name)
            for key, counts in getattr(other, name).items():
                mine = into[key]
                for i, n in enumerate(counts):
                    mine[i] += sign * n
        for name, counter in other.counters().items():
            into = getattr(self, name)
            for counted, n in counter.items():
                into[counted] += sign * n

    def nonzero(self) -> "Rollups":
        """The same counts without the keys that add up to nothing."""
        out = Rollups()
        for name in SEVERAL:
            getattr(out, name).update({k: v for k, v in getattr(self, name).items() if any(v)})
        for name, counter in self.counters().items():
            getattr(out, name).update({k: v for k, v in counter.items() if v})
        return out


# The tables with several counts per key (lists), the others have one.
SEVERAL = ("activity", "promotions")


def arrival_source(*, via_claim: bool, printed: bool | None, created: date | None, on: date) -> int:
    """How a card came to a shop for its first visit there, on date `on` (the card row's dates
    are UTC dates, and so is `on`); 0 when the stamp did not say what the card row holds."""
    if via_claim:
        return CLAIM
    if printed is None or created is None:
        return 0
    if printed:
        return PRINTED
    return EXISTING if created < on else NEW


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
        holder: str = "",
        trials: Sequence[Trial] = (),
    ) -> None:
        self.state = state
        self.holder = holder  # the card at this merchant, for the hold-out groups of `trials`
        self.trials = trials
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
            self._reached(REDEEMED, FIRST_REDEMPTION, entry)

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
            earned = after // goal - before // goal
            counts[REWARDS] += earned
            if earned > 0:
                self._reached(REWARDED, FIRST_REWARD, entry)

    def _reached(self, flag: int, step: int, entry: Entry) -> None:
        """A funnel step past the visits, counted the first time the card reaches it."""
        state = self.state
        if state.steps & flag:
            return
        state.steps |= flag
        # A bonus can sort before its own stamp (same second): the day is that stamp's.
        first = state.first_day if state.first_day is not None else self.slot(entry)[0]
        self.out.funnel[(first, step)] += 1

    def _bonus(self, entry: Entry) -> None:
        """Bonus stamps count as stamps given and towards rewards; they are no scan or visit."""
        key = self.slot(entry)
        self._earned(entry, self.out.activity[key])
        if entry.promotion_id is not None:
            self.out.promotions[(entry.promotion_id, key[0], 0)][BONUS] += entry.delta

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
        for key, (visit, entered, returned) in visit_counts(
            self.trials, self.holder, day, state.last_day
        ):
            tried = self.out.promotions[key]
            tried[0] += visit
            tried[1] += entered
            tried[2] += returned
        weekday = weekday_of(day)
        slot = weekday * 24 + hour
        # Every visit is in one slot, so the last on this weekday is the latest of its slots.
        on_weekday = [d for s, d in state.slots.items() if s // 24 == weekday]
        self.out.weekdays[(day, _gap(day, max(on_weekday, default=None)))] += 1
        self.out.hours[(day, hour, _gap(day, state.slots.get(slot)))] += 1
        state.slots[slot] = day
        if state.first_day is None:
            state.first_day = day
            self.out.funnel[(day, FIRST_VISIT)] += 1
        elif state.visits == 1:
            state.second_day = day
            self.out.funnel[(state.first_day, SECOND_VISIT)] += 1
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
    entries: Iterable[Entry],
    *,
    required: Mapping[int, int],
    tz: ZoneInfo,
    holder: str = "",
    trials: Sequence[Trial] = (),
) -> tuple[Rollups, CardState]:
    """One card's whole share of the rollups, from its whole history at one merchant (the card
    is `holder` there, for the hold-out groups of the merchant's `trials`)."""
    history = in_order(entries)
    by_id = {e.id: e for e in history}
    undone = {e.voids_entry_id for e in history if e.kind == "void"}
    out = Rollups()
    tally = CardTally(
        state=CardState(), lifetime={}, required=required, tz=tz, out=out, holder=holder,
        trials=trials,
    )  # fmt: skip
    for entry in history:
        if entry.kind == "void":
            target = by_id.get(entry.voids_entry_id or "")
            if target is not None:
                tally.undone(target)
        elif entry.id not in undone:
            tally.add(entry)
    return out, tally.state
