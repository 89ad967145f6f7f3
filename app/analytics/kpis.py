"""KPI maths over rollup rows. Pure: no database, no web, no clock.

Days are local day numbers (app.analytics.rollups). A *window* counts visits on some days by how
long ago the same card's previous visit was, which gives distinct-card counts for any span:
a card was active in [a, b) once for each visit in [a, b) whose previous visit is before a.

Privacy (docs/design.md, privacy model 5): every figure about fewer than k cards is hidden, and
so is every figure from which a hidden one could be worked out. Figures are registered as *cells*
with the equations that hold between them (a total and its parts); `suppress` hides more cells
until no equation has exactly one hidden member.
"""

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.analytics.rollups import month_of, month_start

# The headline's "active cards" windows.
MONTH_DAYS = 30
QUARTER_DAYS = 90
# The purchase cycle: the median days between a card's visits over the year up to the end of
# the period, kept between a week and half a year (so the windows below hold enough cards to
# be shown); half a month (the old 30/60-day windows) until k cards have come back in that year.
CYCLE_YEAR = 365
DEFAULT_CYCLE_DAYS = 15
MIN_CYCLE_DAYS, MAX_CYCLE_DAYS = 7, 180
# A card is active while its last visit is less than two cycles ago; "at risk" from two to four
# cycles, "lapsed" after four.
ACTIVE_CYCLES = 2
# The quarter-over-quarter view: the quarter the period ends in (to its end) and those before
# (back to the shop's first card).
QUARTERS = 5
# A device is flagged on a day with more than this many times its usual (median) daily scans
# over the previous four weeks (given at least a week of them) ...
VOLUME_FACTOR = 3
BASELINE_DAYS = 28
BASELINE_MIN_DAYS = 7
# ... or when more of its scans stamp a card a second time that day than twice the shop's usual
# share of such repeat scans (and at least this share).
REPEAT_FACTOR = 2
REPEAT_SHARE = 0.25
# Fewer scans than this say nothing either way: a quiet device is not flagged.
FLAG_MIN_SCANS = 20
COHORT_MONTHS = 12
SEGMENTS = ("new", "returning", "loyal", "at_risk", "lapsed")


# --- periods and windows ------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Local days [start, end)."""

    start: int
    end: int

    @property
    def days(self) -> int:
        return self.end - self.start

    def previous(self) -> "Period":
        return Period(self.start - self.days, self.start)

    def shifted(self, days: int) -> "Period":
        return Period(self.start + days, self.end + days)


@dataclass(frozen=True)
class Window:
    """Visits on days [lo, hi) whose card's previous visit was on a day in [prev_lo, prev_hi)
    (None: unbounded); a card's first visit counts when `first` is set."""

    lo: int
    hi: int
    first: bool = True
    returning: bool = True
    prev_lo: int | None = None
    prev_hi: int | None = None


def active_cards(lo: int, hi: int) -> Window:
    """Distinct cards with a visit in [lo, hi)."""
    return Window(lo, hi, prev_hi=lo)


def new_cards(lo: int, hi: int) -> Window:
    """Cards whose first visit ever was in [lo, hi)."""
    return Window(lo, hi, returning=False)


def all_visits(lo: int, hi: int) -> Window:
    return Window(lo, hi)


def loyal_cards(r: int, days: int = MONTH_DAYS) -> Window:
    """Cards that visited in the `days` days before r and in the `days` days before those."""
    return Window(r - days, r, first=False, prev_lo=r - 2 * days, prev_hi=r - days)


def count(rows: Iterable[tuple[int, int, int]], window: Window) -> int:
    """Visits of (day, gap, visits) rows that fall in the window (the SQL does the same)."""
    total = 0
    for day, gap, visits in rows:
        if not window.lo <= day < window.hi:
            continue
        if gap == 0:
            ok = window.first
        else:
            prev = day - gap
            ok = (
                window.returning
                and (window.prev_lo is None or prev >= window.prev_lo)
                and (window.prev_hi is None or prev < window.prev_hi)
            )
        if ok:
            total += visits
    return total


def buckets(period: Period) -> list[Period]:
    """The trend chart's steps: days up to a month, weeks up to four months, else months."""
    if period.days <= 31:
        return [Period(d, d + 1) for d in range(period.start, period.end)]
    if period.days <= 120:
        return weeks(period)
    steps, lo = [], period.start
    while lo < period.end:
        hi = min(month_start(month_of(lo) + 1), period.end)
        steps.append(Period(lo, hi))
        lo = hi
    return _join_short_first(steps, 10)


def weeks(period: Period) -> list[Period]:
    """Seven-day steps ending with the period's last day (the latest week is a whole one)."""
    steps = [Period(max(e - 7, period.start), e) for e in range(period.end, period.start, -7)]
    return _join_short_first(steps[::-1], 4)


def _join_short_first(steps: list[Period], shortest: int) -> list[Period]:
    # A stub of a few days would make a misleading dip at the start of a trend line.
    if len(steps) > 1 and steps[0].days < shortest:
        return [Period(steps[0].start, steps[1].end), *steps[2:]]
    return steps


def new_card_steps(period: Period) -> list[Period]:
    """Steps for new cards: at least weeks, as a day rarely brings k new cards."""
    return weeks(period) if period.days <= 31 else buckets(period)


@dataclass(frozen=True)
class BucketCount:
    visits: int
    cards: int
    new: int


def bucket_counts(
    rows: Sequence[tuple[int, int, int]], steps: Sequence[Period]
) -> list[BucketCount]:
    """Visits, distinct cards and new cards per step (the SQL does the same in one pass)."""
    return [
        BucketCount(
            count(rows, all_visits(s.start, s.end)),
            count(rows, active_cards(s.start, s.end)),
            count(rows, new_cards(s.start, s.end)),
        )
        for s in steps
    ]


# --- purchase cycle, retention and churn --------------------------------------------------------


@dataclass(frozen=True)
class Cycle:
    """The shop's purchase cycle in days: what the owner set, else what the visits say."""

    days: int  # what the windows use
    derived: int | None = None  # from the visits; None: fewer than k cards came back
    chosen: int | None = None  # confirmed or set by the owner

    @property
    def source(self) -> str:
        return "set" if self.chosen else "derived" if self.derived else "default"

    @property
    def active_days(self) -> int:
        """A card is active while its last visit is less than this many days ago."""
        return ACTIVE_CYCLES * self.days


def purchase_cycle(
    gaps: Mapping[int, int], returning_cards: int, k: int, chosen: int | None = None
) -> Cycle:
    """The cycle from a year's returning visits by gap (median, rounded up, kept in bounds),
    when at least k different cards made them (returning_cards: how many, or at least k); the
    owner's choice wins."""
    middle = median(gaps) if returning_cards >= k else None
    derived = None
    if middle is not None:
        derived = min(max(math.ceil(middle), MIN_CYCLE_DAYS), MAX_CYCLE_DAYS)
    return Cycle(chosen or derived or DEFAULT_CYCLE_DAYS, derived, chosen)


def cycle_year(period: Period) -> Period:
    """The days the cycle is derived from: the year up to the end of the period."""
    return Period(period.end - CYCLE_YEAR, period.end)


def retention_window(cycle: Cycle, span: Period) -> int:
    """Days of the active window for the retention of a span: the cycle's, but at least the
    span's length, so every new card of the span is still active at its end and "active at
    the end less the new cards" are the cards kept from before."""
    return max(cycle.active_days, span.days)


@dataclass(frozen=True)
class SpanWindows:
    """What retention and churn of a span [a, b) count, with active window w."""

    at_start: Window  # active at a: a visit in [a - w, a)
    at_end: Window  # active at b: a visit in [b - w, b)
    either: Window  # a visit in [a - w, b): active at a, or since
    new: Window  # first visit in [a, b)


def span_windows(span: Period, cycle: Cycle) -> SpanWindows:
    w = retention_window(cycle, span)
    a, b = span.start, span.end
    return SpanWindows(
        active_cards(a - w, a), active_cards(b - w, b), active_cards(a - w, b), new_cards(a, b)
    )


def quarters(period: Period, n: int = QUARTERS) -> list[Period]:
    """Calendar quarters, oldest first: the one the period ends in (up to the period's end)
    and the n - 1 before it."""
    month = month_of(period.end - 1)
    first = month - month % 3  # months count from January 1970: quarters start at 0, 3, 6 …
    spans = [Period(month_start(first), period.end)]
    for _ in range(n - 1):
        first -= 3
        spans.append(Period(month_start(first), month_start(first + 3)))
    return spans[::-1]


def months_of(span: Period) -> list[Period]:
    """The calendar months of a span (the last one cut at its end)."""
    out, lo = [], span.start
    while lo < span.end:
        hi = min(month_start(month_of(lo) + 1), span.end)
        out.append(Period(lo, hi))
        lo = hi
    return out


def windows_needed(period: Period, cycle: Cycle | None = None) -> set[Window]:
    """The windows compute() reads from Inputs.windows."""
    cycle = cycle or Cycle(DEFAULT_CYCLE_DAYS)
    w = cycle.active_days
    wanted = set()
    for p in (period, period.previous()):
        r = p.end
        wanted |= {
            active_cards(p.start, p.end),
            active_cards(r - MONTH_DAYS, r),
            active_cards(r - QUARTER_DAYS, r),
            active_cards(r - w, r),
            active_cards(r - 2 * w, r),
            new_cards(r - w, r),
            loyal_cards(r, w),
            *vars(span_windows(p, cycle)).values(),
        }
    for q in quarters(period):
        wanted |= set(vars(span_windows(q, cycle)).values())
        wanted |= {new_cards(m.start, m.end) for m in months_of(q)}
    return wanted


# --- what compute() reads -----------------------------------------------------------------------


@dataclass(frozen=True)
class DayActivity:
    day: int
    scans: int = 0
    stamps: int = 0
    visits: int = 0
    redemptions: int = 0
    voids: int = 0
    rewards_earned: int = 0


@dataclass(frozen=True)
class DeviceDay:
    device_id: int
    day: int
    scans: int
    stamps: int
    visits: int
    voids: int


@dataclass(frozen=True)
class Outstanding:
    """The program's liability now: stamps held and rewards due, and how many cards hold them."""

    stamps: int = 0
    rewards: int = 0
    cards_with_stamps: int = 0
    cards_with_rewards: int = 0


@dataclass(frozen=True)
class ProgramDue:
    """Rewards due now in one program, the cards holding them, and the owner's reward value."""

    program_id: int
    rewards: int
    cards: int
    reward_value: int | None = None  # cents


@dataclass(frozen=True)
class Money:
    """What the owner entered (cents): the mean over the programs that have a value."""

    currency: str = "EUR"
    average_ticket: int | None = None
    reward_value: int | None = None


@dataclass
class Inputs:
    period: Period
    k: int
    # Counts of every window in windows_needed(period).
    windows: Mapping[Window, int]
    # Per trend step of the period and of the previous period (the same steps, shifted back).
    steps: Sequence[BucketCount]
    previous_steps: Sequence[BucketCount]
    # Visits by days since the card's previous visit (gap > 0 only), in each period.
    gaps: Mapping[int, int]
    previous_gaps: Mapping[int, int]
    # Cards first seen in the period that had no second visit by its end.
    single_visit: int
    previous_single_visit: int
    # Cards first seen before the end of the period, and before its start.
    ever: int
    previous_ever: int
    # Activity per day over both periods.
    days: Sequence[DayActivity]
    # In the period: (weekday 0=Monday, hour, visits, distinct cards with those visits), and
    # distinct cards with a visit per weekday.
    hours: Sequence[tuple[int, int, int, int]]
    weekday_cards: Mapping[int, int]
    # Per device and day over both periods and the four weeks before the period (for the
    # device's usual volume); distinct cards stamped at each device in the period.
    devices: Sequence[DeviceDay]
    device_cards: Mapping[int, int]
    device_labels: Mapping[int, str]
    # (first_month, month, cards).
    cohorts: Sequence[tuple[int, int, int]]
    outstanding: Outstanding
    # The shop's purchase cycle (it decides the windows above), rewards due per program, and
    # the money the owner entered.
    cycle: Cycle = field(default_factory=lambda: Cycle(DEFAULT_CYCLE_DAYS))
    program_dues: Sequence[ProgramDue] = ()
    money: Money = field(default_factory=Money)


# --- suppression --------------------------------------------------------------------------------


@dataclass
class Cells:
    """Figures by key, which of them are about fewer than k cards, and the sums between them."""

    k: int
    values: dict[Hashable, int] = field(default_factory=dict)
    sensitive: set[Hashable] = field(default_factory=set)
    equations: list[tuple[Hashable, list[Hashable]]] = field(default_factory=list)
    keep: set[Hashable] = field(default_factory=set)

    def add(
        self, key: Hashable, value: int, cards: int | None = None, *, keep: bool = False
    ) -> Hashable:
        """Register a figure about `cards` cards (default: the figure counts cards itself);
        keep: a headline figure, hidden for another's sake only when nothing else will do.

        A figure about no card is sensitive too unless it is 0 itself."""
        self.values[key] = value
        about = value if cards is None else cards
        if about < self.k and (about or value):
            self.sensitive.add(key)
        if keep:
            self.keep.add(key)
        return key

    def sum(self, total: Hashable, parts: Sequence[Hashable]) -> None:
        self.equations.append((total, list(parts)))

    def hidden(self) -> set[Hashable]:
        return suppress(self.values, self.sensitive, self.equations, self.keep)


def suppress(
    values: Mapping[Hashable, int],
    sensitive: Iterable[Hashable],
    equations: Sequence[tuple[Hashable, Sequence[Hashable]]],
    keep: Iterable[Hashable] = (),
) -> set[Hashable]:
    """Hide the sensitive cells and enough others that none can be worked out from the sums.

    An equation with exactly one hidden member would give it away, so one more of its members
    is hidden, until nothing changes: the smallest visible part (or else the total), but a
    figure to keep only when there is no other.
    """
    hidden, kept = set(sensitive), set(keep)
    changed = True
    while changed:
        changed = False
        for total, parts in equations:
            members = {total, *parts}
            if len(members & hidden) != 1:
                continue
            choice = min(
                members - hidden,
                key=lambda m: (m in kept, m == total, values[m], repr(m)),
            )
            hidden.add(choice)
            changed = True
    return hidden


# --- results ------------------------------------------------------------------------------------


@dataclass
class Figure:
    """A number for the page. hidden: not shown, because it is about fewer than k cards (small)
    or because such a figure could be worked out from it; value None and not hidden: there is
    nothing to compute it from (e.g. a rate over an empty period)."""

    value: float | None
    hidden: bool = False
    small: bool = False


@dataclass
class Pair:
    current: Figure
    previous: Figure
    change: float | None = None


@dataclass
class Step:
    """One step of a trend: [start, end) in the period, and the same step one period earlier."""

    start: int
    end: int
    current: Figure
    previous: Figure


@dataclass
class Segment:
    name: str
    current: Figure
    previous: Figure
    change: float | None


@dataclass
class CohortRow:
    month: int
    size: Figure
    # Share of the cohort still visiting 0, 1, 2 … months after its first month (None: future).
    shares: list[Figure | None]


@dataclass
class DeviceRow:
    device_id: int
    label: str
    cards: Figure  # distinct cards stamped there: what the row is about
    scans: Figure
    stamps: Figure
    visits: Figure
    repeat_scans: Figure
    voids: Figure
    flags: list[dict[str, Any]]


@dataclass
class QuarterRow:
    """Retention and churn of one calendar quarter (partial: the quarter is not over yet)."""

    start: int
    end: int
    partial: bool
    active_start: Figure
    active_end: Figure
    new: Figure
    lost: Figure
    retention_rate: Figure
    churn_rate: Figure


@dataclass
class Dashboard:
    period: Period
    previous: Period
    k: int
    cycle: Cycle
    headline: dict[str, Pair]
    visit_steps: list[Step]
    new_steps: list[Step]
    segments: list[Segment]
    all_cards: Pair
    cohorts: list[CohortRow]
    rewards: dict[str, Pair]
    outstanding: dict[str, Figure]
    weekdays: list[Figure]
    hours: list[int]
    heat: list[list[Figure]]
    devices: list[DeviceRow]
    # Retention of the period and the one before: active at start and end, new, lost.
    retention: dict[str, Pair] = field(default_factory=dict)
    quarters: list[QuarterRow] = field(default_factory=list)
    # Estimates from the money the owner entered (empty without an average ticket), and what
    # the owner entered.
    money: dict[str, Pair] = field(default_factory=dict)
    entered: Money = field(default_factory=Money)
    # Too few cards in the period for most figures: the page leads with first steps, and
    # what can be shown (cards so far, stamps on the period's last day).
    starting: bool = False
    first_figures: dict[str, Figure] = field(default_factory=dict)


def median(histogram: Mapping[int, int]) -> float | None:
    """Median of a histogram {value: how often}; the mean of the middle two for an even count."""
    n = sum(histogram.values())
    if n == 0:
        return None
    middle = []
    seen = 0
    for value in sorted(histogram):
        before, seen = seen, seen + histogram[value]
        for rank in ((n - 1) // 2, n // 2):
            if before <= rank < seen:
                middle.append(value)
    return (middle[0] + middle[-1]) / 2


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


# --- compute ------------------------------------------------------------------------------------

_StepKeys = tuple[Period, Hashable, Hashable]


def compute(inputs: Inputs) -> Dashboard:
    """Every figure of the dashboard, with the privacy rule applied."""
    return _Builder(inputs).build()


class _Builder:
    def __init__(self, inputs: Inputs) -> None:
        self.i = inputs
        self.p = inputs.period
        self.q = inputs.period.previous()
        self.cells = Cells(inputs.k)
        self._hidden: set[Hashable] = set()

    # Figures are built in two passes: register cells and equations, then read them back.
    def build(self) -> Dashboard:
        i, cells = self.i, self.cells
        periods = {"current": self.p, "previous": self.q}
        facts = {name: self._period_cells(name, p) for name, p in periods.items()}
        steps = self._step_cells()
        segments = {name: self._segment_cells(p.end) for name, p in periods.items()}
        cohorts = self._cohort_cells()
        weekdays, heat, hours = self._hour_cells(facts["current"]["visits"])
        devices = self._device_cells(facts["current"]["visits"])
        outstanding = self._outstanding_cells()
        spans = {name: self._span_cells(p) for name, p in periods.items()}
        quarter_keys = [(q, self._span_cells(q, months=True)) for q in quarters(self.p)]
        dues = self._due_cells(outstanding[1])
        last_day = self._last_day_cells()
        hidden = cells.hidden()
        self._hidden = hidden

        def fig(key: Hashable, value: float | None = None) -> Figure:
            if key in hidden:
                return Figure(None, hidden=True, small=key in cells.sensitive)
            return Figure(cells.values[key] if value is None else value)

        def derived(value: float | None, *basis: Hashable) -> Figure:
            # A rate or a sum built on hidden counts is hidden with them.
            if any(b in hidden for b in basis):
                return Figure(None, hidden=True)
            return Figure(value)

        headline: dict[str, Pair] = {}
        for name in ("active_30", "active_90", "cards", "new_cards", "visits", "stamps"):
            headline[name] = _pair(*(fig(facts[p][name]) for p in periods))
        for name, (num, den) in {
            "repeat_rate": ("repeat", "cards"),
            "visits_per_card": ("visits", "cards"),
        }.items():
            headline[name] = _pair(
                *(
                    derived(
                        _ratio(cells.values[facts[p][num]], cells.values[facts[p][den]]),
                        facts[p][num],
                        facts[p][den],
                    )
                    for p in periods
                )
            )
        headline["median_days_between_visits"] = _pair(
            derived(median(i.gaps), facts["current"]["repeat"]),
            derived(median(i.previous_gaps), facts["previous"]["repeat"]),
        )

        def rates(keys: Mapping[str, Hashable]) -> tuple[Figure, Figure]:
            v, start = cells.values, keys["at_start"]
            kept = derived(_ratio(v[keys["kept"]], v[start]), start, keys["kept"], keys["at_end"])
            lost = derived(_ratio(v[keys["lost"]], v[start]), start, keys["lost"])
            return kept, lost

        spans_shown = {name: rates(keys) for name, keys in spans.items()}
        headline["retention_rate"] = _pair(*(spans_shown[p][0] for p in periods))
        headline["churn_rate"] = _pair(*(spans_shown[p][1] for p in periods))
        retention = {
            name: _pair(*(fig(spans[p][key]) for p in periods))
            for name, key in (
                ("active_start", "at_start"), ("active_end", "at_end"), ("new", "new"),
                ("lost", "lost"),
            )
        }  # fmt: skip
        quarter_rows = [
            QuarterRow(
                q.start, q.end, q.end == self.p.end and q.end != month_start(month_of(q.start) + 3),
                fig(keys["at_start"]), fig(keys["at_end"]), fig(keys["new"]),
                fig(keys["lost"]), *rates(keys),
            )
            for q, keys in quarter_keys
            # Quarters before the shop's first card are left out.
            if any(cells.values[keys[name]] for name in ("at_start", "at_end", "new"))
        ]  # fmt: skip
        rewards = {
            "earned": _pair(*(fig(facts[p]["earned"]) for p in periods)),
            "redeemed": _pair(*(fig(facts[p]["redeemed"]) for p in periods)),
            "redemption_rate": _pair(
                *(
                    derived(
                        _ratio(
                            cells.values[facts[p]["redeemed"]], cells.values[facts[p]["earned"]]
                        ),
                        facts[p]["redeemed"],
                        facts[p]["earned"],
                    )
                    for p in periods
                )
            ),
        }
        device_rows = []
        for device_id, key, voids_key, figures, flags in devices:
            cards = fig(key, figures[0])  # "fewer than k cards" when that is why
            scans, stamps, visits, repeats = (derived(v, key) for v in figures[1:])
            voids = derived(cells.values[voids_key], key, voids_key)
            if voids_key in cells.sensitive:
                voids.small = True
            label = i.device_labels.get(device_id, "")
            if cards.value is None:
                # The flag stays (it is how staff stamping their own cards shows), its figures
                # go with the row's: they would be about fewer than k cards.
                flags = [{"reason": f["reason"], "day": f["day"]} for f in flags]
            device_rows.append(
                DeviceRow(device_id, label, cards, scans, stamps, visits, repeats, voids, flags)
            )
        money = self._money(headline, facts, spans_shown, derived)
        if "clv" in money:
            headline["clv"] = money.pop("clv")
        outstanding_value = derived(dues[0], *([outstanding[1]] if len(dues[1]) < 2 else dues[1]))
        if dues[0] is None:
            outstanding_value = Figure(None)
        first_figures = {
            "cards_so_far": fig(segments["current"]["ever"]),
            "stamps": fig(last_day),
        }
        cards_now = cells.values[facts["current"]["cards"]]
        return Dashboard(
            period=self.p,
            previous=self.q,
            k=i.k,
            cycle=i.cycle,
            retention=retention,
            quarters=quarter_rows,
            money=money,
            entered=i.money,
            starting=cards_now < i.k,
            first_figures=first_figures,
            headline=headline,
            visit_steps=[Step(s.start, s.end, fig(now), fig(then)) for s, now, then in steps[0]],
            new_steps=[Step(s.start, s.end, fig(now), fig(then)) for s, now, then in steps[1]],
            segments=[
                Segment(name, c, p, _change(c, p))
                for name in SEGMENTS
                for c, p in [(fig(segments["current"][name]), fig(segments["previous"][name]))]
            ],
            all_cards=_pair(fig(segments["current"]["ever"]), fig(segments["previous"]["ever"])),
            cohorts=[
                CohortRow(
                    month,
                    fig(size),
                    [
                        None
                        if c is None
                        else derived(cells.values[c] / cells.values[size], size, c)
                        for c in row
                    ],
                )
                for month, size, row in cohorts
            ],
            rewards=rewards,
            outstanding={
                "stamps": derived(i.outstanding.stamps, outstanding[0]),
                "rewards": fig(outstanding[1], i.outstanding.rewards),
                "cards_with_stamps": fig(outstanding[0]),
                "cards_with_rewards": fig(outstanding[1]),
                "value": outstanding_value,
            },
            weekdays=[fig(w) for w in weekdays],
            hours=hours,
            heat=[[fig(c) for c in row] for row in heat],
            devices=device_rows,
        )

    def _period_cells(self, name: str, p: Period) -> dict[str, Hashable]:
        """Cards, visits, new cards, stamps and rewards of a period; windows at its end."""
        i, c, r = self.i, self.cells, p.end
        w = i.windows
        previous = name == "previous"
        steps = i.previous_steps if previous else i.steps
        cards = w[active_cards(p.start, p.end)]
        single = i.previous_single_visit if previous else i.single_visit
        days = [d for d in i.days if p.start <= d.day < p.end]
        a30, a90 = w[active_cards(r - MONTH_DAYS, r)], w[active_cards(r - QUARTER_DAYS, r)]
        new, visits = sum(s.new for s in steps), sum(s.visits for s in steps)
        stamps = sum(d.stamps for d in days)
        keys = {
            "cards": c.add(("active", p.start, p.end), cards, keep=True),
            "active_30": c.add(("active", r - MONTH_DAYS, r), a30, keep=True),
            "active_90": c.add(("active", r - QUARTER_DAYS, r), a90, keep=True),
            "new_cards": c.add(("new", p.start, p.end), new, keep=True),
            "visits": c.add(("visits", p.start, p.end), visits, cards, keep=True),
            "stamps": c.add(("stamps", p.start, p.end), stamps, cards, keep=True),
            "repeat": c.add(("repeat", p.start, p.end), cards - single),
            "single": c.add(("single", p.start, p.end), single),
            # Rewards are counted, not cards: a count below k is about fewer than k cards.
            "earned": c.add(("earned", p.start, p.end), sum(d.rewards_earned for d in days)),
            "redeemed": c.add(("redeemed", p.start, p.end), sum(d.redemptions for d in days)),
        }
        c.sum(keys["cards"], [keys["repeat"], keys["single"]])
        return keys

    def _step_cells(self) -> tuple[list[_StepKeys], list[_StepKeys]]:
        """Visits per step, new cards per (coarser) step, of both periods: they add up."""
        c, shift = self.cells, -self.p.days
        fine = buckets(self.p)
        visits: list[_StepKeys] = []
        for s, now, then in zip(fine, self.i.steps, self.i.previous_steps, strict=True):
            b = s.shifted(shift)
            now_key = c.add(("visits", s.start, s.end), now.visits, now.cards)
            visits.append((s, now_key, c.add(("visits", b.start, b.end), then.visits, then.cards)))
        new: list[_StepKeys] = []
        for s in new_card_steps(self.p):
            b = s.shifted(shift)
            inside = [n for n, f in enumerate(fine) if s.start <= f.start < s.end]
            now_new = sum(self.i.steps[n].new for n in inside)
            then_new = sum(self.i.previous_steps[n].new for n in inside)
            now_key = c.add(("new", s.start, s.end), now_new)
            new.append((s, now_key, c.add(("new", b.start, b.end), then_new)))
        for p, pick in ((self.p, 1), (self.q, 2)):
            c.sum(("visits", p.start, p.end), [k[pick] for k in visits])
            c.sum(("new", p.start, p.end), [k[pick] for k in new])
        return visits, new

    def _segment_cells(self, r: int) -> dict[str, Hashable]:
        """New, returning, loyal, at risk, lapsed at the end r of a period (they add up).

        Active (new, returning, loyal): a visit in the last two purchase cycles; at risk: the
        last visit two to four cycles ago; lapsed: longer ago."""
        w, c, days = self.i.windows, self.cells, self.i.cycle.active_days
        ever = self.i.ever if r == self.p.end else self.i.previous_ever
        active = w[active_cards(r - days, r)]
        active_2 = w[active_cards(r - 2 * days, r)]
        new = w[new_cards(r - days, r)]
        loyal = w[loyal_cards(r, days)]
        keys = {
            "new": c.add(("new", r - days, r), new),
            "loyal": c.add(("loyal", r, days), loyal),
            "returning": c.add(("returning", r, days), active - new - loyal),
            "at_risk": c.add(("at_risk", r, days), active_2 - active),
            "lapsed": c.add(("lapsed", r, days), ever - active_2),
            "ever": c.add(("ever", r), ever),
            # The totals of the segment table: hidden for a segment's sake only as a last resort.
            "a30": c.add(("active", r - days, r), active, keep=True),
            "a90": c.add(("active", r - 2 * days, r), active_2, keep=True),
        }
        c.sum(keys["a30"], [keys["new"], keys["returning"], keys["loyal"]])
        c.sum(keys["a90"], [keys["a30"], keys["at_risk"]])
        c.sum(keys["ever"], [keys["a90"], keys["lapsed"]])
        return keys

    def _span_cells(self, span: Period, *, months: bool = False) -> dict[str, Hashable]:
        """Retention and churn of a span: active at its start and end, its new cards, those
        kept from before (active at the end, not new) and those lost (active at the start or
        since, not at the end). months: the new cards add up to its months' (the cohorts')."""
        w, c = self.i.windows, self.cells
        sw = span_windows(span, self.i.cycle)
        start, end, either, new = (w[x] for x in (sw.at_start, sw.at_end, sw.either, sw.new))
        keys = {
            "at_start": c.add(("active", sw.at_start.lo, sw.at_start.hi), start, keep=True),
            "at_end": c.add(("active", sw.at_end.lo, sw.at_end.hi), end, keep=True),
            "either": c.add(("active", sw.either.lo, sw.either.hi), either),
            "new": c.add(("new", span.start, span.end), new, keep=True),
            "kept": c.add(("kept", span.start, span.end, sw.at_end.lo), end - new),
            "lost": c.add(("lost", span.start, span.end, sw.at_end.lo), either - end),
        }
        c.sum(keys["at_end"], [keys["kept"], keys["new"]])
        c.sum(keys["either"], [keys["at_end"], keys["lost"]])
        # Those active at the start either stayed or were lost; the kept ones stayed or came
        # back after a long time away: neither group is shown, but each is about cards.
        stayed = c.add(("stayed", span.start, span.end, sw.at_end.lo), start - (either - end))
        back = c.add(
            ("back", span.start, span.end, sw.at_end.lo), end - new - (start - either + end)
        )
        c.sum(keys["at_start"], [stayed, keys["lost"]])
        c.sum(keys["kept"], [stayed, back])
        if months:
            parts = [
                c.add(("new", m.start, m.end), w[new_cards(m.start, m.end)])
                for m in months_of(span)
            ]
            c.sum(keys["new"], parts)
        return keys

    def _due_cells(self, due_key: Hashable) -> tuple[float | None, list[Hashable]]:
        """The entered value of the rewards due now (currency units; None: not every program
        with rewards due has a value),
        and the per-program cards it is about: with two programs or more, the value would
        tell how the rewards due split between them."""
        c, value, keys = self.cells, 0, []
        # Only a complete value: every program with rewards due has a reward value.
        valued = self.i.money.reward_value is not None
        for due in self.i.program_dues:
            if due.cards:
                keys.append(c.add(("due", due.program_id), due.cards))
            if due.reward_value is None:
                valued = valued and not due.rewards
            else:
                value += due.rewards * due.reward_value
        if len(keys) > 1:
            c.sum(due_key, keys)
        return (value / 100 if valued else None), keys

    def _last_day_cells(self) -> Hashable:
        """Stamps on the period's last day (today, for a preset), about that day's cards."""
        last = self.p.end - 1
        day = next((d for d in self.i.days if d.day == last), DayActivity(last))
        return self.cells.add(("stamps", last, last + 1), day.stamps, day.visits)

    def _money(
        self,
        headline: Mapping[str, Pair],
        facts: Mapping[str, Mapping[str, Hashable]],
        spans_shown: Mapping[str, tuple[Figure, Figure]],
        derived: Callable[..., Figure],
    ) -> dict[str, Pair]:
        """Estimates from the average ticket and reward value the owner entered (currency
        units): lifetime value per card, reward cost and the program's net effect."""
        ticket, reward = self.i.money.average_ticket, self.i.money.reward_value
        if ticket is None:
            return {}
        v, out = self.cells.values, {}
        periods = {"current": self.p, "previous": self.q}
        parts: dict[str, list[Figure]] = defaultdict(list)
        for name, p in periods.items():
            f = facts[name]
            visits, cards = v[f["visits"]], v[f["cards"]]
            per_year = _ratio(visits * CYCLE_YEAR, cards * p.days)
            churn = spans_shown[name][1]
            lifetime = None
            if churn.value is not None and per_year is not None:
                yearly = 1 - (1 - churn.value) ** (CYCLE_YEAR / p.days)
                lifetime = 1 / yearly if yearly > 0 else None
            basis = (f["visits"], f["cards"])
            parts["visits_per_year"].append(derived(per_year, *basis))
            parts["lifetime_years"].append(
                Figure(None, hidden=True) if churn.hidden else Figure(lifetime)
            )
            clv = None if lifetime is None or per_year is None else ticket * per_year * lifetime
            hidden_clv = churn.hidden or any(b in self._hidden for b in basis)
            parts["clv"].append(Figure(None, hidden=True) if hidden_clv else _money(clv))
            cost = None if reward is None else reward * v[f["redeemed"]]
            parts["reward_cost"].append(derived(_cents(cost), f["redeemed"]))
            takings = ticket * (visits - v[f["new_cards"]])
            net = takings - (cost or 0)
            parts["net_effect"].append(
                derived(_cents(net), f["visits"], f["new_cards"], f["redeemed"])
            )
        for name, (now, before) in parts.items():
            out[name] = _pair(now, before)
        return out

    def _cohort_cells(self) -> list[tuple[int, Hashable, list[Hashable | None]]]:
        """Cohorts of the twelve months up to the period's last: size, then cards still visiting."""
        c = self.cells
        last = month_of(self.p.end - 1)
        first = last - COHORT_MONTHS + 1
        table: dict[int, dict[int, int]] = defaultdict(dict)
        for first_month, month, cards in self.i.cohorts:
            if first <= first_month <= last and month <= last:
                table[first_month][month] = cards
        rows = []
        for cohort in range(first, last + 1):
            size = table[cohort].get(cohort, 0)
            if not size:
                continue
            # Keyed like the new cards of that month: the trend may show the same number.
            size_key = c.add(("new", month_start(cohort), month_start(cohort + 1)), size)
            cells: list[Hashable | None] = []
            for month in range(cohort, cohort + COHORT_MONTHS):
                if month > last:
                    cells.append(None)
                    continue
                kept = table[cohort].get(month, 0)
                key = c.add(("retained", cohort, month), kept)
                lost = c.add(("lost", cohort, month), size - kept)
                # A share shows both the cards that stayed and, by difference, those that left.
                c.sum(size_key, [key, lost])
                cells.append(key)
            rows.append((cohort, size_key, cells))
        return rows

    def _hour_cells(
        self, visits_key: Hashable
    ) -> tuple[list[Hashable], list[list[Hashable]], list[int]]:
        c = self.cells
        by_cell: dict[tuple[int, int], int] = defaultdict(int)
        cards: dict[tuple[int, int], int] = defaultdict(int)
        for weekday, hour, visits, n in self.i.hours:
            by_cell[(weekday, hour)] += visits
            cards[(weekday, hour)] += n
        used = sorted({h for (_, h), v in by_cell.items() if v})
        hours = list(range(used[0], used[-1] + 1)) if used else []
        weekdays, heat = [], []
        for weekday in range(7):
            # The cells show visits, but are about the cards behind them: three regulars every
            # Monday at 8 make many visits and still single those three out.
            row = [
                c.add(("hour", weekday, h), by_cell[(weekday, h)], cards[(weekday, h)])
                for h in hours
            ]
            visits = sum(by_cell[(weekday, h)] for h in range(24))
            total = c.add(("weekday", weekday), visits, self.i.weekday_cards.get(weekday, 0))
            c.sum(total, row)
            weekdays.append(total)
            heat.append(row)
        c.sum(visits_key, weekdays)
        return weekdays, heat, hours

    def _device_cells(
        self, visits_key: Hashable
    ) -> list[tuple[int, Hashable, Hashable, tuple[int, ...], list[dict[str, Any]]]]:
        """A row per device, about the cards stamped there; its undone stamps on their own."""
        c, p = self.cells, self.p
        current: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        daily: dict[int, list[DeviceDay]] = defaultdict(list)
        for d in self.i.devices:
            daily[d.device_id].append(d)
            if p.start <= d.day < p.end:
                totals = current[d.device_id]
                for n, value in enumerate((d.scans, d.stamps, d.visits, d.voids)):
                    totals[n] += value
        rows: list[tuple[int, Hashable, Hashable, tuple[int, ...], list[dict[str, Any]]]] = []
        keys = []
        all_scans = sum(t[0] for t in current.values())
        usual_repeats = _ratio(all_scans - sum(t[2] for t in current.values()), all_scans) or 0.0
        for device_id in sorted(current):
            scans, stamps, visits, voids = current[device_id]
            cards = self.i.device_cards.get(device_id, 0)
            key = c.add(("device", device_id), visits, cards)
            keys.append(key)
            # Undone stamps may be of cards the row does not count (all their stamps there
            # undone): a count of them below k is about fewer than k cards.
            voids_key = c.add(("device-voids", device_id), voids)
            figures = (cards, scans, stamps, visits, scans - visits)
            flags = device_flags(daily[device_id], p, usual_repeats)
            rows.append((device_id, key, voids_key, figures, flags))
        # A device's visits are its scans less its repeat scans: they add up to the period's.
        c.sum(visits_key, keys)
        return rows

    def _outstanding_cells(self) -> tuple[Hashable, Hashable]:
        o, c = self.i.outstanding, self.cells
        return (
            c.add(("holding",), o.cards_with_stamps),
            c.add(("due",), o.cards_with_rewards),
        )


def device_flags(
    days: Sequence[DeviceDay], period: Period, usual_repeats: float
) -> list[dict[str, Any]]:
    """Days worth a look at one device, newest first: far more scans than the device usually
    has (the median of its previous four weeks), or far more repeat scans than usual.

    Staff stamping their own cards is the known fraud: it shows as bursts of scans, or as the
    same few cards stamped again and again on one day. usual_repeats is the share of repeat
    scans (a card stamped a second time that day) over all devices in the period.
    """
    by_day = {d.day: d for d in days}
    flags: list[dict[str, Any]] = []
    for d in sorted(days, key=lambda d: d.day, reverse=True):
        if not period.start <= d.day < period.end or d.scans < FLAG_MIN_SCANS:
            continue
        before = sorted(
            by_day[x].scans
            for x in range(d.day - BASELINE_DAYS, d.day)
            if x in by_day and by_day[x].scans
        )
        if len(before) >= BASELINE_MIN_DAYS:
            usual = (before[(len(before) - 1) // 2] + before[len(before) // 2]) / 2
            if d.scans > VOLUME_FACTOR * usual:
                flags.append({"reason": "volume", "day": d.day, "scans": d.scans, "usual": usual})
        repeats = d.scans - d.visits
        if repeats / d.scans > max(REPEAT_SHARE, REPEAT_FACTOR * usual_repeats):
            flags.append({"reason": "repeats", "day": d.day, "scans": d.scans, "repeats": repeats})
    return flags


def _cents(value: float | None) -> float | None:
    return None if value is None else round(value) / 100


def _money(cents: float | None) -> Figure:
    return Figure(_cents(cents))


def _pair(current: Figure, previous: Figure) -> Pair:
    return Pair(current, previous, _change(current, previous))


def _change(current: Figure, previous: Figure) -> float | None:
    if current.value is None or previous.value is None:
        return None
    return current.value - previous.value
