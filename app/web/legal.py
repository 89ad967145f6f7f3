"""The operator's legal pages: the imprint and the privacy notice.

Both are filled from settings (TREU_OPERATOR_*, TREU_PRIVACY_*): one treu serves one operator,
whoever runs the server for the shops on it. While the operator's name is unset the pages say
so, plainly, instead of showing an imprint that names nobody. What the privacy notice says
treu stores is written from the data model (docs/design.md, sections 4 and 6), not from
settings: an operator cannot make it promise less or more than the code does.
"""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.dependencies import SettingsDep
from app.web import render

router = APIRouter(include_in_schema=False)


@router.get("/imprint", response_class=HTMLResponse)
def imprint(request: Request, settings: SettingsDep) -> HTMLResponse:
    return render(request, "legal/imprint.html", operator=settings)


@router.get("/privacy", response_class=HTMLResponse)
def privacy(request: Request, settings: SettingsDep) -> HTMLResponse:
    return render(request, "legal/privacy.html", operator=settings)
