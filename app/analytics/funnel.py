"""The way in: the funnel per month and where the shop's cards come from.

Read from analytics_funnel (app.analytics.models.FunnelRollup), which the ledger's projections
keep when each step happens; `compute` is pure. Every count is about that many cards and is
hidden below k; a share is hidden with either of its counts. The arrivals of a period (printed,
claim, existing, new) add up to its new cards, which the headline shows (less any whose source
was not recorded): one hidden source hides another, so none can be worked out.
"""

from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import Session

from app.analytics.kpis import Cells, Figure, Pair, Period
from app.analytics.models import funnel_table
from app.analytics.rollups import (
    FIRST_VISIT,
    FUNNEL_STEPS,
    POSTER,
    SOURCES,
    month_of,
    month_start,
)

# The funnel shows at least this many months, the period's last month last.
FUNNEL_MONTHS = 6
ARRIVAL_SOURCES = tuple(s for s in SOURCES if s != POSTER)
# The daily CSV's source columns, in this order.
SOURCE_NAMES = tuple(SOURCES.values())
_ARRIVED = "arrived"


@dataclass
class FunnelMonth:
    """Cards whose first visit here was in `month`: how many reached each step (FUNNEL_STEPS'
    names), and each later step's share of the first visits."""

    month: int
    steps: dict[str, Figure]
    shares: dict[str, Figure]


@dataclass
class WayIn:
    months: list[FunnelMonth]
    # Source name -> cards in the period and the one before.
    sources: dict[str, Pair]


def funnel_months(period: Period) -> list[int]:
    last = month_of(period.end - 1)
    first = min(month_of(period.start), last - FUNNEL_MONTHS + 1)
    return list(range(first, last + 1))


def way_in(*, session: Session, merchant_id: int, period: Period, k: int) -> WayIn:
    """The funnel and the sources for the owner's dashboard and the KPI API (two grouped,
    indexed reads of the shop's rows)."""
    months = funnel_months(period)
    f = funnel_table.c
    lo = min(month_start(months[0]), period.previous().start)
    rows = session.execute(
        select(f.day, f.step, func.sum(f.cards))
        .where(f.merchant_id == merchant_id, f.day >= lo, f.day < period.end)
        .group_by(f.day, f.step)
    )
    return compute([(int(d), int(s), int(n)) for d, s, n in rows], period=period, k=k)


def compute(rows: Iterable[tuple[int, int, int]], *, period: Period, k: int) -> WayIn:
    """(day, step, cards) rows → the figures, suppressed below k."""
    months = funnel_months(period)
    by_month: dict[tuple[int, int], int] = defaultdict(int)
    by_period: dict[tuple[str, int], int] = defaultdict(int)
    periods = {"current": period, "previous": period.previous()}
    for day, step, n in rows:
        if step in FUNNEL_STEPS:
            by_month[(month_of(day), step)] += n
        for name, p in periods.items():
            if p.start <= day < p.end:
                by_period[(name, step)] += n
    cells = Cells(k)
    for month in months:
        for step in FUNNEL_STEPS:
            cells.add(("funnel", month, step), by_month[(month, step)])
    for name in periods:
        cells.add((name, POSTER), by_period[(name, POSTER)])
        parts: list[Hashable] = [
            cells.add((name, s), by_period[(name, s)]) for s in ARRIVAL_SOURCES
        ]
        # The arrivals add up to the new cards (shown in the headline), less those whose source
        # was not recorded (before sources were counted): taken as known, so that one hidden
        # source always has a second hidden beside it.
        arrived = sum(by_period[(name, s)] for s in ARRIVAL_SOURCES)
        cells.sum(cells.add((name, _ARRIVED), arrived, keep=True), parts)
    hidden = cells.hidden()

    def fig(key: Hashable) -> Figure:
        if key in hidden:
            return Figure(None, hidden=True, small=key in cells.sensitive)
        return Figure(cells.values[key])

    out = []
    for month in months:
        steps = {name: fig(("funnel", month, step)) for step, name in FUNNEL_STEPS.items()}
        first = steps[FUNNEL_STEPS[FIRST_VISIT]]
        shares = {
            name: _share(steps[name], first)
            for step, name in FUNNEL_STEPS.items()
            if step != FIRST_VISIT
        }
        out.append(FunnelMonth(month, steps, shares))
    sources = {
        SOURCES[s]: Pair(fig(("current", s)), fig(("previous", s)))
        for s in (POSTER, *ARRIVAL_SOURCES)
    }
    return WayIn(out, sources)


def _share(part: Figure, whole: Figure) -> Figure:
    if part.hidden or whole.hidden:
        return Figure(None, hidden=True)
    if not whole.value or part.value is None:
        return Figure(None)
    return Figure(part.value / whole.value)


def daily_sources(
    *, session: Session, merchant_id: int, lo: int, hi: int
) -> dict[int, dict[str, int]]:
    """Cards per source and local day in [lo, hi), for the daily CSV (days without any left
    out)."""
    f = funnel_table.c
    rows = session.execute(
        select(f.day, f.step, f.cards).where(
            f.merchant_id == merchant_id, f.day >= lo, f.day < hi, f.step.in_(sorted(SOURCES))
        )
    )
    days: dict[int, dict[str, int]] = defaultdict(dict)
    for day, step, n in rows:
        days[int(day)][SOURCES[int(step)]] = int(n)
    return days
