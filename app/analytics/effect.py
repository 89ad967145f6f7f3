"""Did a promotion work? Its bonus stamps and budget, and where it holds cards out, the treated
cards against the held-out ones.

Read from the promotion rows and analytics_promotion (app.analytics.models.PromotionRollup:
visits, cards entered and returns per promotion, day and group), never from the ledger. For each
group: visits per card (visits ÷ cards entered) and return rate (returns ÷ visits, a return
being a visit whose previous one fell while the promotion ran and at most 30 days before). The
difference treated - held out comes with a 95 % interval from statsmodels (Newcomb's score
interval for the two return rates, a score interval for the two Poisson rates of visits per
card). One card's visits are not independent of each other, so the intervals are approximate:
they treat every visit as a separate trial. A group of fewer than k cards hides the
comparison, and the owner is told it is too small to tell.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from app.analytics.models import promotion_table
from app.loyalty.models import Promotion

LEVEL = 0.05  # a 95 % interval
TREATED, HELD_OUT = 0, 1


@dataclass(frozen=True)
class Group:
    """What one group's cards did while the promotion ran (and up to 30 days after)."""

    cards: int  # cards entered: each card's first visit since the promotion began
    visits: int
    returned: int


@dataclass(frozen=True)
class Difference:
    """treated - held out, with its 95 % interval (approximate: see the module)."""

    value: float
    low: float
    high: float
    p_value: float | None = None


@dataclass(frozen=True)
class Comparison:
    """Treated against held out; None throughout when either group has fewer than k cards."""

    too_small: bool
    treated: Group | None = None
    held_out: Group | None = None
    visits_per_card: tuple[float, float] | None = None  # (treated, held out)
    return_rate: tuple[float, float] | None = None
    visits_per_card_difference: Difference | None = None
    return_rate_difference: Difference | None = None


@dataclass(frozen=True)
class PromotionEffect:
    promotion_id: int
    title: str
    kind: str
    starts_on: date | None
    ends_on: date | None
    ended: bool
    budget: int  # 0: none
    spent: int  # bonus stamps given (and not undone)
    budget_used: float | None  # spent ÷ budget (None: no budget)
    holdout_percent: int
    comparison: Comparison | None  # None: the promotion holds no cards out


def promotion_effects(*, session: Session, merchant_id: int, k: int) -> list[PromotionEffect]:
    """Every promotion of the shop, newest first, with what it did (two indexed reads)."""
    promotions = session.exec(
        sm_select(Promotion)
        .where(Promotion.merchant_id == merchant_id)
        .order_by(col(Promotion.id).desc())
    ).all()
    p = promotion_table.c
    rows = session.execute(
        select(
            p.promotion_id,
            p.held_out,
            func.sum(p.visits),
            func.sum(p.entered),
            func.sum(p.returned),
            func.sum(p.bonus_stamps),
        )
        .where(p.merchant_id == merchant_id)
        .group_by(p.promotion_id, p.held_out)
    )
    groups: dict[int, dict[int, Group]] = defaultdict(dict)
    given: dict[int, int] = defaultdict(int)
    for promotion_id, held_out, visits, entered, returned, bonus in rows:
        groups[promotion_id][held_out] = Group(int(entered), int(visits), int(returned))
        given[promotion_id] += int(bonus)
    return [
        effect(promotion, groups.get(promotion.id or 0, {}), given[promotion.id or 0], k)
        for promotion in promotions
    ]


def effect(promotion: Promotion, groups: dict[int, Group], spent: int, k: int) -> PromotionEffect:
    budget = promotion.budget
    comparison = None
    if promotion.holdout_percent:
        empty = Group(0, 0, 0)
        comparison = compare(groups.get(TREATED, empty), groups.get(HELD_OUT, empty), k)
    return PromotionEffect(
        promotion_id=promotion.id or 0,
        title=promotion.title,
        kind=promotion.kind,
        starts_on=promotion.starts_on,
        ends_on=promotion.ends_on,
        ended=promotion.ended_at is not None,
        budget=budget,
        spent=spent,
        budget_used=spent / budget if budget else None,
        holdout_percent=promotion.holdout_percent,
        comparison=comparison,
    )


def compare(treated: Group, held_out: Group, k: int) -> Comparison:
    """The two groups side by side, or only "too small" when either has fewer than k cards."""
    if treated.cards < k or held_out.cards < k:
        return Comparison(too_small=True)
    per_card = (treated.visits / treated.cards, held_out.visits / held_out.cards)
    rate = (treated.returned / treated.visits, held_out.returned / held_out.visits)
    return _compared(treated, held_out, per_card, rate)


def _compared(
    treated: Group, held_out: Group, per_card: tuple[float, float], rate: tuple[float, float]
) -> Comparison:
    # Imported here, not with the module: statsmodels (with SciPy) takes a second or two to
    # import, which every `treu` command and server start would pay for a panel few open.
    import numpy as np
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep
    from statsmodels.stats.rates import confint_poisson_2indep

    with np.errstate(all="ignore"):  # equal rates of 0 or 1: a p-value of NaN, not a warning
        low, high = confint_proportions_2indep(
            treated.returned, treated.visits, held_out.returned, held_out.visits,
            method="newcomb", compare="diff", alpha=LEVEL,
        )  # fmt: skip
        test = test_proportions_2indep(
            treated.returned, treated.visits, held_out.returned, held_out.visits,
            method="score", compare="diff",
        )  # fmt: skip
        v_low, v_high = confint_poisson_2indep(
            treated.visits, treated.cards, held_out.visits, held_out.cards,
            method="score", compare="diff", alpha=LEVEL,
        )  # fmt: skip
    return Comparison(
        too_small=False,
        treated=treated,
        held_out=held_out,
        visits_per_card=per_card,
        return_rate=rate,
        visits_per_card_difference=Difference(
            per_card[0] - per_card[1], float(v_low), float(v_high)
        ),
        return_rate_difference=Difference(
            rate[0] - rate[1], float(low), float(high), _p(test.pvalue)
        ),
    )


def _p(value: float) -> float | None:
    return None if value != value else float(value)  # NaN when both rates are 0 or 1
