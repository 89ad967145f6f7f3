"""The KPI API: the dashboard's figures as JSON for the owner's own tools (owner session)."""

from datetime import date

from fastapi import APIRouter, Request

from app.analytics import service
from app.analytics.schemas import KpiReport, report
from app.db import SessionDep
from app.errors import problem_responses
from app.merchants.auth import CurrentMerchant

router = APIRouter(
    prefix="/api/v1/merchant", tags=["merchant analytics"], responses=problem_responses(401, 422)
)


@router.get("/kpis", response_model=KpiReport)
def kpis(
    request: Request,
    session: SessionDep,
    merchant: CurrentMerchant,
    period: str = service.DEFAULT_PERIOD,
    start: date | None = None,
    end: date | None = None,
) -> KpiReport:
    """KPIs of the logged-in owner's shop: `period` 30d, 90d or 12m, or `start` and `end` (local
    dates, inclusive). Figures about fewer than k cards are null with `suppressed: true`."""
    today = service.today_of(merchant, request.app.state.clock())
    choice = "custom" if start is not None or end is not None else period
    chosen = service.choose_period(choice=choice, today=today, start=start, end=end)
    k = request.app.state.settings.k_anonymity
    figures = service.dashboard(session=session, merchant=merchant, period=chosen, k=k)
    feedback = service.feedback_figures(session=session, merchant=merchant, period=chosen, k=k)
    return report(figures, feedback)
