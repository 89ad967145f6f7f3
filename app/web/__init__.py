"""Server-rendered pages: the customer card, the till and the merchant area.

`render()` is the one way a page is made: it picks the visitor's language, renders the
template with the shared context and remembers an explicit language choice in a cookie.
"""

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.web import i18n
from app.web.assets import asset_version

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

templates = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True, default_for_string=True),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
# The callables read the language of the request being rendered (a context variable), so one
# environment serves every language; newstyle gettext escapes and formats safely.
templates.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
templates.globals["languages"] = i18n.LANGUAGES
templates.globals["language_name"] = i18n.language_name


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page in the visitor's language (and its dates in the visitor's region)."""
    language, locale = i18n.choose_language(request), i18n.choose_locale(request)
    i18n.activate(language, locale)
    html = templates.get_template(template).render(
        request=request, lang=language, lang_tag=i18n.locale_tag(locale), static=static_url,
        **context,
    )  # fmt: skip
    response = HTMLResponse(html, status_code=status_code)
    if request.query_params.get("lang") in i18n.LANGUAGES:
        response.set_cookie(
            i18n.LANG_COOKIE, language, max_age=365 * 86400, samesite="lax", httponly=True
        )
    return response


def static_url(path: str) -> str:
    """URL of a file under static/, versioned by its modification time for long caching."""
    return f"/static/{path}?v={asset_version(path)}"
