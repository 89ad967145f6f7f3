"""KPI maths over rollup rows. Pure: no database, no web, no clock.

Days are local day numbers (app.analytics.rollups). A *window* counts visits on some days by how
long ago the same card's previous visit was, which gives distinct-card counts for any span:
a card was active in [a, b) once for each visit in [a, b) whose previous visit is before a.

Privacy (docs/design.md, privacy model 5): every figure about fewer than k cards is hidden, and
so is every figure from which a hidden one could be worked out. Figures are registered as *cells*
with the equations that hold between them (a total and its parts); `suppress` hides more cells
until no equation has exactly one hidden member.
"""

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.analytics.rollups import month_of, month_start

# A card is "active" in the month-sized windows the lifecycle uses.
MONTH_DAYS = 30
QUARTER_DAYS = 90
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


def loyal_cards(r: int) -> Window:
    """Cards that visited in the 30 days before r and in the 30 days before those."""
    return Window(
        r - MONTH_DAYS, r, first=False, prev_lo=r - 2 * MONTH_DAYS, prev_hi=r - MONTH_DAYS
    )


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


def windows_needed(period: Period) -> set[Window]:
    """The windows compute() reads from Inputs.windows."""
    wanted = set()
    for p in (period, period.previous()):
        r = p.end
        wanted |= {
            active_cards(p.start, p.end),
            active_cards(r - MONTH_DAYS, r),
            active_cards(r - QUARTER_DAYS, r),
            new_cards(r - MONTH_DAYS, r),
            loyal_cards(r),
        }
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
class Dashboard:
    period: Period
    previous: Period
    k: int
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
        hidden = cells.hidden()

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
        return Dashboard(
            period=self.p,
            previous=self.q,
            k=i.k,
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
        """New, returning, loyal, at risk, lapsed at the end r of a period (they add up)."""
        w, c = self.i.windows, self.cells
        ever = self.i.ever if r == self.p.end else self.i.previous_ever
        a30 = w[active_cards(r - MONTH_DAYS, r)]
        a90 = w[active_cards(r - QUARTER_DAYS, r)]
        new = w[new_cards(r - MONTH_DAYS, r)]
        loyal = w[loyal_cards(r)]
        keys = {
            "new": c.add(("new", r - MONTH_DAYS, r), new),
            "loyal": c.add(("loyal", r), loyal),
            "returning": c.add(("returning", r), a30 - new - loyal),
            "at_risk": c.add(("at_risk", r), a90 - a30),
            "lapsed": c.add(("lapsed", r), ever - a90),
            "ever": c.add(("ever", r), ever),
            "a30": ("active", r - MONTH_DAYS, r),
            "a90": ("active", r - QUARTER_DAYS, r),
        }
        c.sum(keys["a30"], [keys["new"], keys["returning"], keys["loyal"]])
        c.sum(keys["a90"], [keys["a30"], keys["at_risk"]])
        c.sum(keys["ever"], [keys["a90"], keys["lapsed"]])
        return keys

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


def _pair(current: Figure, previous: Figure) -> Pair:
    return Pair(current, previous, _change(current, previous))


def _change(current: Figure, previous: Figure) -> float | None:
    if current.value is None or previous.value is None:
        return None
    return current.value - previous.value
