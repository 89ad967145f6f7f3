"""The KPI API: the dashboard's figures as JSON for the owner's own tools (owner session)."""

from fastapi import APIRouter

from app.analytics import service
from app.analytics.schemas import KpiReport, report
from app.db import SessionDep
from app.dependencies import ClockDep, SettingsDep
from app.errors import problem_responses
from app.inputs import Day
from app.merchants.auth import CurrentMerchant

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
    return report(shown.figures, shown.feedback)
