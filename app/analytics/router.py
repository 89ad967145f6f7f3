"""The KPI API: the dashboard's figures as JSON for the owner's own tools (owner session), and
what the owner tells the dashboard (purchase cycle, average ticket, reward value)."""

from fastapi import APIRouter, Depends
from sqlmodel import Session

from app.analytics import service
from app.analytics.kpis import Cycle
from app.analytics.schemas import (
    AnalyticsSettingsIn,
    AnalyticsSettingsOut,
    KpiReport,
    ProgramValuesOut,
    cycle_out,
    report,
)
from app.db import SessionDep, WriteSessionDep
from app.dependencies import ClockDep, SettingsDep
from app.errors import problem_responses
from app.inputs import Day
from app.loyalty import service as loyalty
from app.loyalty.router import json_writes
from app.merchants.auth import CurrentMerchant
from app.merchants.models import Merchant

router = APIRouter(
    prefix="/api/v1/merchant", tags=["merchant analytics"], responses=problem_responses(401, 422)
)


@router.get("/kpis", response_model=KpiReport)
def kpis(
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    merchant: CurrentMerchant,
    period: str = service.DEFAULT_PERIOD,
    start: Day | None = None,
    end: Day | None = None,
) -> KpiReport:
    """KPIs of the logged-in owner's shop: `period` 30d, 90d or 12m, or `start` and `end` (local
    dates, inclusive). Figures about fewer than k cards are null with `suppressed: true`."""
    shown = service.owner_dashboard(
        session=session, merchant=merchant, now=clock(), k=settings.k_anonymity,
        choice="custom" if start is not None or end is not None else period, start=start, end=end,
    )  # fmt: skip
    return report(shown.figures, shown.feedback, way_in=shown.way_in, promotions=shown.promotions)


def _settings_out(session: Session, merchant: Merchant, cycle: Cycle) -> AnalyticsSettingsOut:
    return AnalyticsSettingsOut(
        currency=service.CURRENCY,
        purchase_cycle=cycle_out(cycle),
        programs=[
            ProgramValuesOut(
                id=p.id or 0, name=p.name, average_ticket_cents=p.average_ticket_cents,
                reward_value_cents=p.reward_value_cents,
            )
            for p in loyalty.programs(session=session, merchant=merchant)
            if p.closed_at is None
        ],
    )  # fmt: skip


@router.get("/analytics/settings", response_model=AnalyticsSettingsOut)
def analytics_settings(
    session: SessionDep, clock: ClockDep, settings: SettingsDep, merchant: CurrentMerchant
) -> AnalyticsSettingsOut:
    """The shop's purchase cycle (set by the owner, or derived from the visits of the last year)
    and each program's average ticket and reward value, in cents."""
    today = service.today_of(merchant, clock())
    cycle = service.purchase_cycle_of(
        session=session, merchant=merchant, today=today, k=settings.k_anonymity
    )
    return _settings_out(session, merchant, cycle)


@router.put(
    "/analytics/settings", response_model=AnalyticsSettingsOut,
    dependencies=[Depends(json_writes)], responses=problem_responses(404, 415),
)  # fmt: skip
def change_analytics_settings(
    body: AnalyticsSettingsIn,
    write: WriteSessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    merchant: CurrentMerchant,
) -> AnalyticsSettingsOut:
    """Confirm or set the purchase cycle (`null`: derive it again) and programs' average ticket
    and reward value (`null`: none); what the body leaves out stays. The lifecycle segments
    follow the cycle, and the lifetime value needs an average ticket."""
    mine = write.get(Merchant, merchant.id)
    assert mine is not None
    if "purchase_cycle_days" in body.model_fields_set:
        loyalty.set_purchase_cycle(session=write, merchant=mine, days=body.purchase_cycle_days)
    for values in body.programs:
        loyalty.set_program_values(
            session=write, merchant=mine, program_id=values.id,
            average_ticket_cents=values.average_ticket_cents,
            reward_value_cents=values.reward_value_cents,
        )  # fmt: skip
    today = service.today_of(mine, clock())
    cycle = service.purchase_cycle_of(
        session=write, merchant=mine, today=today, k=settings.k_anonymity
    )
    return _settings_out(write, mine, cycle)
