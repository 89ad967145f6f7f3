"""The KPI API's output: the dashboard's figures as JSON (hidden figures are null + suppressed)."""

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.analytics import kpis
from app.analytics.effect import PromotionEffect
from app.analytics.funnel import WayIn
from app.analytics.rollups import day_date, month_date
from app.inputs import Id
from app.loyalty.service import CYCLE_DAYS, MAX_CENTS


class FigureOut(BaseModel):
    value: float | None = Field(
        description="null when suppressed or when there is nothing to count"
    )
    suppressed: bool = Field(description="about fewer than k cards, or would reveal such a figure")
    reason: str | None = Field(
        default=None, description="why suppressed: fewer-than-k, or reveals-a-smaller-figure"
    )


class FigurePairOut(BaseModel):
    current: FigureOut
    previous: FigureOut
    change: float | None


class PeriodOut(BaseModel):
    start: date
    end: date = Field(description="the period's last day (inclusive), merchant-local")


class StepOut(BaseModel):
    start: date
    end: date = Field(description="the step's last day (inclusive)")
    current: FigureOut
    previous: FigureOut = Field(description="the same step one period earlier")


class TrendOut(BaseModel):
    visits: list[StepOut]
    new_cards: list[StepOut]


class SegmentOut(BaseModel):
    name: str
    current: FigureOut
    previous: FigureOut
    change: float | None


class CohortOut(BaseModel):
    month: str = Field(description="YYYY-MM of the cards' first visit")
    cards: FigureOut
    retention: list[FigureOut | None] = Field(
        description="share that came back in month 0 (the first), 1, 2 … after the first visit; "
        "null: not yet"
    )


class DeviceFiguresOut(BaseModel):
    device_id: int
    label: str
    cards: FigureOut = Field(
        description="distinct cards stamped at the device: the row is hidden below k"
    )
    scans: FigureOut
    stamps: FigureOut
    visits: FigureOut
    repeat_scans: FigureOut
    voids: FigureOut
    flags: list[dict[str, Any]]


class HeatOut(BaseModel):
    hours: list[int]
    weekdays: list[FigureOut] = Field(
        description="visits Monday … Sunday (hidden when by fewer than k distinct cards)"
    )
    cells: list[list[FigureOut]] = Field(
        description="visits per weekday (rows) and hour (hidden when by fewer than k cards)"
    )


class CycleOut(BaseModel):
    days: int = Field(description="the purchase cycle the figures use, in days")
    source: str = Field(description="set (by the owner), derived (from the visits) or default")
    derived_days: int | None = Field(
        description="median days between a card's visits over the year up to the period's end "
        "(kept within 7-180); null when fewer than k cards came back in that year"
    )
    set_days: int | None = Field(description="what the owner confirmed or set; null: none")
    active_days: int = Field(description="a card is active while its last visit is newer")
    lapsed_after_days: int = Field(description="at risk from active_days on, lapsed after this")


class QuarterOut(BaseModel):
    start: date
    end: date = Field(description="the quarter's last day counted (inclusive)")
    partial: bool = Field(description="the quarter is not over: counted up to the period's end")
    active_start: FigureOut
    active_end: FigureOut
    new_cards: FigureOut
    lost: FigureOut
    retention_rate: FigureOut = Field(description="percent")
    churn_rate: FigureOut = Field(description="percent")


class RetentionOut(BaseModel):
    """What headline.retention_rate and churn_rate are computed from, and quarter over quarter.

    retention_rate = (active_end - new_cards) / active_start * 100;
    churn_rate = lost / active_start * 100 (lost: active at the start or since, not at the end).
    """

    active_start: FigurePairOut
    active_end: FigurePairOut
    new_cards: FigurePairOut
    lost: FigurePairOut
    quarters: list[QuarterOut]


class MoneyOut(BaseModel):
    """Estimates from the average ticket and reward value the owner entered (per program; the
    mean over the programs that have one). Only there when an average ticket is set."""

    estimate: bool = True
    currency: str
    average_ticket: float = Field(description="in the currency, as entered")
    reward_value: float | None
    visits_per_year: FigurePairOut = Field(description="visits per card in the period, per year")
    lifetime_years: FigurePairOut = Field(description="1 / yearly churn (from the period's churn)")
    reward_cost: FigurePairOut = Field(description="reward value x rewards redeemed")
    net_effect: FigurePairOut = Field(
        description="average ticket x visits by returning cards - reward cost"
    )


class FunnelMonthOut(BaseModel):
    month: str = Field(description="YYYY-MM of the cards' first visit here")
    steps: dict[str, FigureOut] = Field(
        description="cards of that month that reached first_visit, second_visit, first_reward "
        "(lifetime stamps here first reached a program's goal), redeemed (a first redemption)"
    )
    shares: dict[str, FigureOut] = Field(description="each later step's share of first_visit")


class DifferenceOut(BaseModel):
    value: float = Field(description="treated minus held out")
    low: float = Field(description="95 % interval, approximate: one card's visits are not "
                       "independent")  # fmt: skip
    high: float
    p_value: float | None = None


class GroupOut(BaseModel):
    cards: int
    visits: int
    returned: int
    visits_per_card: float
    return_rate: float


class PromotionEffectOut(BaseModel):
    promotion_id: int
    title: str
    kind: str
    starts_on: date | None
    ends_on: date | None
    ended: bool
    budget: int = Field(description="bonus stamps in total; 0: no limit")
    bonus_stamps: int = Field(description="bonus stamps given (and not undone with their stamp)")
    budget_used: float | None = Field(description="bonus stamps given ÷ budget")
    holdout_percent: int
    too_small: bool | None = Field(
        description="true: either group has fewer than k cards, too small to tell; null: no "
        "hold-out"
    )
    treated: GroupOut | None = None
    held_out: GroupOut | None = None
    visits_per_card_difference: DifferenceOut | None = None
    return_rate_difference: DifferenceOut | None = None


class KpiReport(BaseModel):
    period: PeriodOut
    previous: PeriodOut
    k: int
    headline: dict[str, FigurePairOut] = Field(
        description="current/previous pairs; retention_rate and churn_rate in percent, clv (an "
        "estimate, only with an average ticket) in money.currency"
    )
    trend: TrendOut
    segments: list[SegmentOut]
    all_cards: FigurePairOut
    cohorts: list[CohortOut]
    rewards: dict[str, FigurePairOut]
    outstanding: dict[str, FigureOut]
    busiest: HeatOut
    devices: list[DeviceFiguresOut]
    feedback: dict[str, Any] | None
    purchase_cycle: CycleOut
    retention: RetentionOut
    money: MoneyOut | None
    getting_started: bool = Field(
        description="fewer than k cards in the period: the page leads with first steps"
    )
    funnel: list[FunnelMonthOut] = Field(description="the way in, per month of first visit")
    sources: dict[str, FigurePairOut] = Field(
        description="cards made from the shop's page (poster), and first visits here by claim "
        "code, printed card, an older card (existing) or a card made that day (new)"
    )
    promotions: list[PromotionEffectOut] = Field(description="did each promotion work?")


def _figure(f: kpis.Figure, scale: float = 1) -> FigureOut:
    reason = None
    if f.hidden:
        reason = "fewer-than-k" if f.small else "reveals-a-smaller-figure"
    value = None if f.value is None else round(f.value * scale, 10) if scale != 1 else f.value
    return FigureOut(value=value, suppressed=f.hidden, reason=reason)


def _pair(p: kpis.Pair, scale: float = 1) -> FigurePairOut:
    return FigurePairOut(
        current=_figure(p.current, scale),
        previous=_figure(p.previous, scale),
        change=None if p.change is None else round(p.change * scale, 10),
    )


# Shares the API gives in percent, as their definitions say (the page's other rates are shares).
PERCENT = frozenset({"retention_rate", "churn_rate"})


def _headline(name: str, p: kpis.Pair) -> FigurePairOut:
    return _pair(p, 100 if name in PERCENT else 1)


def cycle_out(c: kpis.Cycle) -> CycleOut:
    return CycleOut(
        days=c.days, source=c.source, derived_days=c.derived, set_days=c.chosen,
        active_days=c.active_days, lapsed_after_days=2 * c.active_days,
    )  # fmt: skip


def _retention(d: kpis.Dashboard) -> RetentionOut:
    r = d.retention
    return RetentionOut(
        active_start=_pair(r["active_start"]), active_end=_pair(r["active_end"]),
        new_cards=_pair(r["new"]), lost=_pair(r["lost"]),
        quarters=[
            QuarterOut(
                start=day_date(q.start), end=day_date(q.end - 1), partial=q.partial,
                active_start=_figure(q.active_start), active_end=_figure(q.active_end),
                new_cards=_figure(q.new), lost=_figure(q.lost),
                retention_rate=_figure(q.retention_rate, 100),
                churn_rate=_figure(q.churn_rate, 100),
            )
            for q in d.quarters
        ],
    )  # fmt: skip


def _money(d: kpis.Dashboard) -> MoneyOut | None:
    m, e = d.money, d.entered
    if not m or e.average_ticket is None:
        return None
    return MoneyOut(
        currency=e.currency, average_ticket=e.average_ticket / 100,
        reward_value=None if e.reward_value is None else e.reward_value / 100,
        **{name: _pair(m[name]) for name in (
            "visits_per_year", "lifetime_years", "reward_cost", "net_effect")},
    )  # fmt: skip


def _period(p: kpis.Period) -> PeriodOut:
    return PeriodOut(start=day_date(p.start), end=day_date(p.end - 1))


def _step(s: kpis.Step) -> StepOut:
    return StepOut(
        start=day_date(s.start),
        end=day_date(s.end - 1),
        current=_figure(s.current),
        previous=_figure(s.previous),
    )


def _funnel(w: WayIn) -> list[FunnelMonthOut]:
    return [
        FunnelMonthOut(
            month=month_date(m.month).strftime("%Y-%m"),
            steps={name: _figure(f) for name, f in m.steps.items()},
            shares={name: _figure(f) for name, f in m.shares.items()},
        )
        for m in w.months
    ]


def _effect(e: PromotionEffect) -> PromotionEffectOut:
    c = e.comparison
    out = PromotionEffectOut(
        promotion_id=e.promotion_id, title=e.title, kind=e.kind, starts_on=e.starts_on,
        ends_on=e.ends_on, ended=e.ended, budget=e.budget, bonus_stamps=e.spent,
        budget_used=e.budget_used, holdout_percent=e.holdout_percent,
        too_small=None if c is None else c.too_small,
    )  # fmt: skip
    if c is None or c.treated is None or c.held_out is None:
        return out
    assert c.visits_per_card and c.return_rate and c.visits_per_card_difference
    assert c.return_rate_difference
    for i, (name, g) in enumerate((("treated", c.treated), ("held_out", c.held_out))):
        group = GroupOut(
            cards=g.cards, visits=g.visits, returned=g.returned,
            visits_per_card=c.visits_per_card[i], return_rate=c.return_rate[i],
        )  # fmt: skip
        setattr(out, name, group)
    out.visits_per_card_difference = DifferenceOut(**vars(c.visits_per_card_difference))
    out.return_rate_difference = DifferenceOut(**vars(c.return_rate_difference))
    return out


def report(
    d: kpis.Dashboard, feedback: dict[str, Any] | None, *, way_in: WayIn,
    promotions: list[PromotionEffect],
) -> KpiReport:  # fmt: skip
    """The dashboard as the API gives it."""
    return KpiReport(
        period=_period(d.period),
        previous=_period(d.previous),
        k=d.k,
        headline={name: _headline(name, p) for name, p in d.headline.items()},
        trend=TrendOut(
            visits=[_step(s) for s in d.visit_steps], new_cards=[_step(s) for s in d.new_steps]
        ),
        segments=[
            SegmentOut(
                name=s.name,
                current=_figure(s.current),
                previous=_figure(s.previous),
                change=s.change,
            )
            for s in d.segments
        ],
        all_cards=_pair(d.all_cards),
        cohorts=[
            CohortOut(
                month=month_date(c.month).strftime("%Y-%m"),
                cards=_figure(c.size),
                retention=[None if f is None else _figure(f) for f in c.shares],
            )
            for c in d.cohorts
        ],
        rewards={name: _pair(p) for name, p in d.rewards.items()},
        outstanding={name: _figure(f) for name, f in d.outstanding.items()},
        busiest=HeatOut(
            hours=d.hours,
            weekdays=[_figure(f) for f in d.weekdays],
            cells=[[_figure(f) for f in row] for row in d.heat],
        ),
        devices=[
            DeviceFiguresOut(
                device_id=r.device_id,
                label=r.label,
                cards=_figure(r.cards),
                scans=_figure(r.scans),
                stamps=_figure(r.stamps),
                visits=_figure(r.visits),
                repeat_scans=_figure(r.repeat_scans),
                voids=_figure(r.voids),
                flags=[{**f, "day": day_date(f["day"]).isoformat()} for f in r.flags],
            )
            for r in d.devices
        ],
        feedback=feedback,
        purchase_cycle=cycle_out(d.cycle),
        retention=_retention(d),
        money=_money(d),
        getting_started=d.starting,
        funnel=_funnel(way_in),
        sources={name: _pair(p) for name, p in way_in.sources.items()},
        promotions=[_effect(e) for e in promotions],
    )


# --- what the owner tells the dashboard -------------------------------------------------------


class ProgramValuesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Id
    average_ticket_cents: int | None = Field(
        default=None, ge=0, le=MAX_CENTS, description="what a visit brings in, in cents; null: not"
    )
    reward_value_cents: int | None = Field(
        default=None, ge=0, le=MAX_CENTS, description="what the main reward costs, in cents"
    )


class ProgramValuesOut(BaseModel):
    id: int
    name: str
    average_ticket_cents: int | None
    reward_value_cents: int | None


class AnalyticsSettingsIn(BaseModel):
    """What to change; what the body leaves out stays."""

    model_config = ConfigDict(extra="forbid")
    purchase_cycle_days: int | None = Field(
        default=None, ge=CYCLE_DAYS[0], le=CYCLE_DAYS[1],
        description="the shop's purchase cycle in days; null: derive it from the visits",
    )  # fmt: skip
    programs: list[ProgramValuesIn] = Field(default_factory=list, max_length=20)


class AnalyticsSettingsOut(BaseModel):
    currency: str
    purchase_cycle: CycleOut
    programs: list[ProgramValuesOut] = Field(description="the programs not closed")
