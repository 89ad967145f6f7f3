"""Feedback figures from plain rows: pure functions, no database.

Every figure about fewer than k cards is suppressed (None, shown as "fewer than k"), like the
loyalty KPIs, so a single customer's rating cannot be read off a small group; one card may give
feedback after several visits, so groups are counted in cards, not in feedbacks. Where a
suppressed weekly cell could be worked out from the total and the other weeks, a second week
is suppressed with it.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from statistics import median
from typing import Any


@dataclass(frozen=True)
class Rated:
    """One feedback as the figures see it: no holder, no comment."""

    created_at: datetime
    rating: int
    recommend: int | None = None
    tags: tuple[str, ...] = ()
    replied_at: datetime | None = None
    hidden: bool = False
    # The same number for one card's feedbacks within one query, meaningless outside it; None:
    # a card of its own.
    card: int | None = None


def cards(rows: Iterable[Rated]) -> int:
    """How many different cards gave these feedbacks."""
    rows = list(rows)
    return len({r.card for r in rows if r.card is not None}) + sum(r.card is None for r in rows)


def csat(ratings: Sequence[int]) -> float | None:
    """Share of satisfied customers: ratings of 4 or 5."""
    if not ratings:
        return None
    return sum(1 for r in ratings if r >= 4) / len(ratings)


def average(ratings: Sequence[int]) -> float | None:
    return sum(ratings) / len(ratings) if ratings else None


def nps(scores: Sequence[int]) -> dict[str, Any] | None:
    """Net Promoter Score: promoters (9-10) minus detractors (0-6), in points from -100 to 100."""
    if not scores:
        return None
    n = len(scores)
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    passives = n - promoters - detractors
    return {
        "score": round(100 * (promoters - detractors) / n),
        "responses": n,
        "promoters": promoters / n,
        "passives": passives / n,
        "detractors": detractors / n,
    }


def response_rate(rows: Sequence[Rated]) -> float | None:
    if not rows:
        return None
    return sum(1 for r in rows if r.replied_at is not None) / len(rows)


def median_reply_seconds(rows: Sequence[Rated]) -> int | None:
    waits = [(r.replied_at - r.created_at).total_seconds() for r in rows if r.replied_at]
    return round(median(waits)) if waits else None


def week_start(moment: datetime, tz: tzinfo) -> date:
    """The Monday of the moment's week, in the merchant's time zone."""
    day = moment.astimezone(tz).date()
    return day - timedelta(days=day.weekday())


def weeks_between(start: datetime, end: datetime, tz: tzinfo) -> list[date]:
    first, last = week_start(start, tz), week_start(end - timedelta(seconds=1), tz)
    return [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]


def weekly(
    rows: Sequence[Rated], *, start: datetime, end: datetime, tz: tzinfo, k: int
) -> list[dict[str, Any]]:
    """Count, average and CSAT per week, with small weeks suppressed."""
    by_week: dict[date, list[Rated]] = {w: [] for w in weeks_between(start, end, tz)}
    for row in rows:
        by_week.setdefault(week_start(row.created_at, tz), []).append(row)
    small = {w for w, week in by_week.items() if 0 < cards(week) < k}
    if len(small) == 1:
        # One hidden week next to a shown total could be worked out by subtraction.
        shown = [w for w, week in by_week.items() if cards(week) >= k]
        if shown:
            small.add(min(shown, key=lambda w: (len(by_week[w]), w)))
    return [
        {
            "week": w.isoformat(),
            "count": None if w in small else len(week),
            "average_rating": None if w in small else average([r.rating for r in week]),
            "csat": None if w in small else csat([r.rating for r in week]),
            "suppressed": w in small,
        }
        for w, week in sorted(by_week.items())
    ]


def top_tags(rows: Iterable[Rated], *, k: int, limit: int = 5) -> tuple[list[dict[str, Any]], int]:
    """The most chosen tags with counts; a tag chosen by fewer than k cards is only counted."""
    rows = list(rows)
    counts = Counter(tag for row in rows for tag in set(row.tags))
    by_cards = {t: cards(r for r in rows if t in r.tags) for t in counts}
    shown = [(t, c) for t, c in counts.most_common() if by_cards[t] >= k]
    return [{"tag": t, "count": c} for t, c in shown[:limit]], len(counts) - len(shown)


def summarise(
    rows: Sequence[Rated],
    *,
    start: datetime,
    end: datetime,
    tz: tzinfo,
    k: int,
    clicks_by_day: dict[date, int] | None = None,
) -> dict[str, Any]:
    """Every feedback figure for one period, as a plain dict (JSON-ready)."""
    clicks_by_day = clicks_by_day or {}
    n = len(rows)
    enough = cards(rows) >= k
    ratings = [r.rating for r in rows]
    scores = [r.recommend for r in rows if r.recommend is not None]
    scored = cards(r for r in rows if r.recommend is not None) >= k
    tags, hidden_tags = top_tags(rows, k=k)
    clicks_weekly: Counter[date] = Counter()
    for day, clicks in clicks_by_day.items():
        clicks_weekly[day - timedelta(days=day.weekday())] += clicks
    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "k": k,
        "suppressed": not enough,
        "count": n if enough else None,
        "average_rating": average(ratings) if enough else None,
        "csat": csat(ratings) if enough else None,
        "nps": nps(scores) if scored else None,
        "nps_suppressed": not scored,
        # No answers at all is no group to protect; answers from 1 to k-1 cards are suppressed.
        "nps_responses": len(scores) if scored or not scores else None,
        "weekly": weekly(rows, start=start, end=end, tz=tz, k=k),
        "top_tags": tags if enough else [],
        "tags_suppressed": hidden_tags if enough else len({t for r in rows for t in r.tags}),
        "response_rate": response_rate(rows) if enough else None,
        "median_reply_seconds": median_reply_seconds(rows) if enough else None,
        "hidden": sum(1 for r in rows if r.hidden) if enough else None,
        # Clicks are counted per day with no card and no person: nothing to suppress.
        "review_clicks": sum(clicks_by_day.values()),
        "review_clicks_weekly": [
            {"week": w.isoformat(), "clicks": clicks_weekly.get(w, 0)}
            for w in weeks_between(start, end, tz)
        ],
    }
