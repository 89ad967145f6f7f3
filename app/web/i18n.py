"""Languages of the web pages: German and English, from gettext catalogs.

Each area of the site keeps its own catalog (`locale/<lang>/LC_MESSAGES/<area>.po`), so the
areas can grow independently; at start-up they are read with Babel and merged per language.
English is the source language: its msgids are shown as written.
"""

import io
from contextvars import ContextVar
from datetime import date, datetime, tzinfo
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError, negotiate_locale
from babel.dates import format_skeleton, format_time, get_datetime_format
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from starlette.requests import Request

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "lang"

_current: ContextVar[str] = ContextVar("treu_language", default=DEFAULT_LANGUAGE)
# The full locale ("de_AT", "en_GB"): the catalog is the language's, dates and times the region's.
_current_locale: ContextVar[str] = ContextVar("treu_locale", default=DEFAULT_LANGUAGE)


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


def choose_locale(request: Request) -> str:
    """The chosen language with the visitor's region, as Babel names it ("de_AT", "en_GB"): the
    first tag of Accept-Language in that language that names a region Babel knows; the bare
    language ("de", "en") if there is none."""
    language = choose_language(request)
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().replace("-", "_")
        if tag.split("_")[0].lower() != language or "_" not in tag:
            continue
        try:
            return str(Locale.parse(tag))
        except (ValueError, UnknownLocaleError):
            continue
    return language


def locale_tag(locale: str) -> str:
    """A Babel locale as the page's `lang` attribute writes it: "de_AT" → "de-AT"."""
    return locale.replace("_", "-")


def activate(language: str, locale: str | None = None) -> None:
    _current.set(language)
    _current_locale.set(locale if locale and locale.split("_")[0] == language else language)


def current_language() -> str:
    return _current.get()


def current_locale() -> str:
    """The locale of the page being made (its language, and the region when known)."""
    locale = _current_locale.get()
    return locale if locale.split("_")[0] == _current.get() else _current.get()


def format_day(day: date, locale: str | None = None) -> str:
    """A day as the locale writes it briefly: "6. Dez. 2026", "6 Dec 2026", "Dec 6, 2026"."""
    return str(format_skeleton("yMMMd", day, locale=locale or current_locale()))


def format_moment(moment: datetime, zone: tzinfo, locale: str | None = None) -> str:
    """A moment with its day and time, in the locale's own words and clock: "6. Dez. 2026,
    22:49", "6 Dec 2026, 22:49", "Dec 6, 2026, 10:49 PM"."""
    locale = locale or current_locale()
    local = moment.astimezone(zone)
    time = format_time(local, "short", locale=locale)
    joined = str(get_datetime_format("medium", locale=locale))
    return joined.replace("{1}", format_day(local.date(), locale)).replace("{0}", time)


def gettext(message: str) -> str:
    return translations(_current.get()).ugettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ungettext(singular, plural, n)


def language_name(language: str) -> str:
    return str(Locale.parse(language).get_display_name(language)).capitalize()
