"""Treated and held-out visits of a promotion: what analytics_promotion counts, per visit.

A promotion with a hold-out leaves a fixed share of cards without its bonus (app.loyalty.rules
.held_out: a keyed hash of the per-shop holder, nothing stored). Whether it changed behaviour
is read from the visits of both groups while it ran, counted here from the same visit days and
gaps the other rollups are made of (so a rebuild from the ledger and an undo count them the
same way). Visits are counted at the whole shop, whatever program a promotion is limited to:
the question is whether the shop saw its customers more often.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from app.loyalty.rules import held_out

# Counts per (promotion, day, held out): VISITS, ENTERED, RETURNED, and BONUS (bonus stamps
# given; for every promotion, held_out 0).
PROMOTION_FIELDS = ("visits", "entered", "returned", "bonus_stamps")
VISITS, ENTERED, RETURNED, BONUS = range(len(PROMOTION_FIELDS))
# A return counts when the card comes back within this many days of a visit during the
# promotion, so also up to this long after the promotion's last day.
RETURN_DAYS = 30


@dataclass(frozen=True)
class Trial:
    """A promotion with a hold-out, as its rollup needs it: its days (local days since
    1970-01-01, as app.analytics.rollups counts them) and its group key; made from the
    promotion's row by app.ledger.projections.trials."""

    promotion_id: int
    key: str
    percent: int
    first_day: int
    last_day: int | None  # None: still running

    def runs(self, day: int) -> bool:
        return self.first_day <= day and (self.last_day is None or day <= self.last_day)

    def counts_returns(self, day: int) -> bool:
        return self.first_day <= day and (
            self.last_day is None or day <= self.last_day + RETURN_DAYS
        )


def visit_counts(
    trials: Iterable[Trial], holder: str, day: int, previous: int | None
) -> Iterator[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """For a card's visit on `day` (its previous visit here on `previous`, None: its first):
    ((promotion, day, held out 0/1), (visits, entered, returned)) for each promotion it counts
    for. `entered`: its first visit since the promotion began; `returned`: its previous visit
    fell while the promotion ran, at most RETURN_DAYS earlier."""
    for t in trials:
        visit = t.runs(day)
        returned = (
            previous is not None
            and t.runs(previous)
            and day - previous <= RETURN_DAYS
            and t.counts_returns(day)
        )
        if not (visit or returned):
            continue
        entered = visit and (previous is None or previous < t.first_day)
        group = 1 if held_out(t.key, holder, t.percent) else 0
        yield (t.promotion_id, day, group), (int(visit), int(entered), int(returned))
