"""Languages of the web pages: German and English, from gettext catalogs.

Each area of the site keeps its own catalog (`locale/<lang>/LC_MESSAGES/<area>.po`), so the
areas can grow independently; at start-up they are read with Babel and merged per language.
English is the source language: its msgids are shown as written.
"""

import io
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from babel import Locale, negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from starlette.requests import Request

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "lang"

_current: ContextVar[str] = ContextVar("treu_language", default=DEFAULT_LANGUAGE)


@cache
def translations(language: str) -> NullTranslations:
    """Every area's catalog for one language, merged (compiled in memory from the .po files)."""
    merged: NullTranslations | None = None
    for po_file in sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.po")):
        with po_file.open("rb") as f:
            catalog = read_po(f, locale=language)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        loaded = Translations(fp=buffer)
        if isinstance(merged, Translations):
            merged.merge(loaded)
        else:
            merged = loaded
    return merged or NullTranslations()


def choose_language(request: Request) -> str:
    """?lang= first (the visible switch), then the remembered choice, then Accept-Language."""
    for wanted in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if wanted in LANGUAGES:
            return wanted
    header = request.headers.get("accept-language", "")
    preferred = [part.split(";")[0].strip().replace("-", "_") for part in header.split(",")]
    return negotiate_locale(preferred, LANGUAGES, sep="_") or DEFAULT_LANGUAGE


def activate(language: str) -> None:
    _current.set(language)


def current_language() -> str:
    return _current.get()


def gettext(message: str) -> str:
    return translations(_current.get()).ugettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ungettext(singular, plural, n)


def language_name(language: str) -> str:
    return str(Locale.parse(language).get_display_name(language)).capitalize()
