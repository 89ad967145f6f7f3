"""The KPI API's output: the dashboard's figures as JSON (hidden figures are null + suppressed)."""

from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from app.analytics import kpis
from app.analytics.rollups import day_date, month_date


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
        description="share still visiting 0, 1, 2 … months later; null: not yet"
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


class KpiReport(BaseModel):
    period: PeriodOut
    previous: PeriodOut
    k: int
    headline: dict[str, FigurePairOut]
    trend: TrendOut
    segments: list[SegmentOut]
    all_cards: FigurePairOut
    cohorts: list[CohortOut]
    rewards: dict[str, FigurePairOut]
    outstanding: dict[str, FigureOut]
    busiest: HeatOut
    devices: list[DeviceFiguresOut]
    feedback: dict[str, Any] | None


def _figure(f: kpis.Figure) -> FigureOut:
    reason = None
    if f.hidden:
        reason = "fewer-than-k" if f.small else "reveals-a-smaller-figure"
    return FigureOut(value=f.value, suppressed=f.hidden, reason=reason)


def _pair(p: kpis.Pair) -> FigurePairOut:
    return FigurePairOut(current=_figure(p.current), previous=_figure(p.previous), change=p.change)


def _period(p: kpis.Period) -> PeriodOut:
    return PeriodOut(start=day_date(p.start), end=day_date(p.end - 1))


def _step(s: kpis.Step) -> StepOut:
    return StepOut(
        start=day_date(s.start),
        end=day_date(s.end - 1),
        current=_figure(s.current),
        previous=_figure(s.previous),
    )


def report(d: kpis.Dashboard, feedback: dict[str, Any] | None) -> KpiReport:
    """The dashboard as the API gives it."""
    return KpiReport(
        period=_period(d.period),
        previous=_period(d.previous),
        k=d.k,
        headline={name: _pair(p) for name, p in d.headline.items()},
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
    )
