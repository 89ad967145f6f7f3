"""The merchant dashboard page: the owner's KPIs as charts and tables, in German or English.

The figures come from app.analytics (rollups, never the ledger); this module only words and
draws them. The merchant comes from the owner's session, so an owner sees only their own shop.
"""

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Annotated, Any

from babel.dates import format_date, get_day_names
from babel.numbers import format_currency, format_decimal, format_percent
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape
from sqlmodel import Session

from app.analytics import charts, funnel, kpis, service
from app.analytics.exceptions import PeriodError
from app.analytics.rollups import day_date, month_date, month_of
from app.db import SessionDep
from app.dependencies import ClockDep, SettingsDep
from app.errors import AppError
from app.inputs import parse_day
from app.loyalty import service as loyalty
from app.merchants import service as merchants
from app.merchants.auth import CurrentMerchant
from app.merchants.models import Merchant
from app.web import i18n, render
from app.web.i18n import gettext as _
from app.web.merchant import OwnerForm, see_other

router = APIRouter(include_in_schema=False)

PERIOD_CHOICES = ("30d", "90d", "12m", "custom")
EN_DASH, MINUS = " \u2013 ", "\u2212"
# Set once the owner has read why small figures are hidden: the note then stays folded away.
NOTE_COOKIE = "treu_privacy_note"


@dataclass(frozen=True)
class FirstStep:
    """One item of a new shop's checklist, ticked from what the shop already has."""

    name: str  # "poster", "till", "stamp"
    done: bool


def first_steps(
    *, session: Session, merchant: Merchant, figures: kpis.Dashboard
) -> list[FirstStep]:
    """The first-day checklist: a card made from the poster's page, a till paired, a stamp.

    Nothing here is finer than what the owner already sees: "cards so far" reads 0 or "fewer
    than k", the devices page lists the paired tills, and the poster's cards are a yes or no.
    """
    mine = merchant.id or 0
    by_day = funnel.daily_sources(session=session, merchant_id=mine, lo=0, hi=figures.period.end)
    ever = figures.first_figures.get("cards_so_far")
    return [
        FirstStep("poster", any(day.get("poster") for day in by_day.values())),
        FirstStep(
            "till",
            any(
                d.revoked_at is None
                for d in merchants.list_devices(session=session, merchant=merchant)
            ),
        ),
        FirstStep("stamp", ever is not None and (ever.hidden or bool(ever.value))),
    ]


def _parse_day(text: str) -> date | None:
    return parse_day(text) if text else None


@router.get("/merchant/dashboard", response_class=HTMLResponse)
def dashboard_page(
    request: Request,
    session: SessionDep,
    merchant: CurrentMerchant,
    clock: ClockDep,
    settings: SettingsDep,
    period: str = service.DEFAULT_PERIOD,
    start: str = "",
    end: str = "",
    done: str = "",
) -> HTMLResponse:
    """KPIs of the owner's shop for a period, beside the period before it."""
    notice = _("Your numbers were saved.") if done == "numbers" else None
    return _dashboard(
        request, session, merchant, clock, settings, period, start, end, notice=notice
    )


def _dashboard(
    request: Request,
    session: Session,
    merchant: Merchant,
    clock: ClockDep,
    settings: SettingsDep,
    period: str = service.DEFAULT_PERIOD,
    start: str = "",
    end: str = "",
    *,
    notice: str | None = None,
    status_code: int = 200,
    numbers_error: str | None = None,
) -> HTMLResponse:
    language = i18n.choose_language(request)
    i18n.activate(language)
    k = settings.k_anonymity
    shown = partial(service.owner_dashboard, session=session, merchant=merchant, now=clock(), k=k)
    notice_kind = "ok"
    try:
        chosen = shown(choice=period, start=_parse_day(start), end=_parse_day(end))
    except PeriodError:
        notice_kind = "bad"
        notice = _(
            "That period cannot be shown: choose a start date on or before the end date, "
            "not in the future and at most two years long. Showing the last 30 days instead."
        )
        period = service.DEFAULT_PERIOD
        chosen = shown()
    choice = period if period in PERIOD_CHOICES else service.DEFAULT_PERIOD
    steps = (
        first_steps(session=session, merchant=merchant, figures=chosen.figures)
        if chosen.figures.starting
        else []
    )
    response = render(
        request, "merchant/dashboard.html", status_code=status_code, merchant=merchant,
        notice=notice, notice_kind=notice_kind, choice=choice, numbers_error=numbers_error,
        programs=[p for p in loyalty.programs(session=session, merchant=merchant)
                  if p.closed_at is None],
        first_steps=steps, note_dismissed=request.cookies.get(NOTE_COOKIE) == "read",
        **_shown(chosen, Words(language, k)),
    )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/merchant/dashboard/privacy-note", response_model=None)
def dismiss_privacy_note(post: OwnerForm) -> Response:
    """The owner has read why small figures are hidden: fold the note away in this browser."""
    response = see_other("/merchant/dashboard")
    response.set_cookie(
        NOTE_COOKIE, "read", max_age=365 * 86400, path="/merchant", samesite="lax", httponly=True
    )
    return response


_AMOUNT = re.compile(r"\s*(\d{1,7})(?:[.,](\d{1,2}))?\s*(?:€|EUR)?\s*", re.IGNORECASE)


def parse_cents(text: str) -> int | None:
    """An amount as an owner types it ("3,50", "3.5", "12 €"; empty: none) in cents; raises
    ValueError for anything else."""
    if not text.strip():
        return None
    match = _AMOUNT.fullmatch(text)
    if not match:
        raise ValueError(text)
    whole, fraction = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(fraction)


async def _form_fields(request: Request) -> dict[str, str]:
    # The program fields are named by program id: read them all (the route runs in a thread).
    return {name: str(value) for name, value in (await request.form()).items()}


@router.post("/merchant/dashboard/numbers", response_model=None)
def save_numbers(
    request: Request,
    post: OwnerForm,
    clock: ClockDep,
    settings: SettingsDep,
    form: Annotated[dict[str, str], Depends(_form_fields)],
) -> Response:
    """The owner's purchase cycle (empty: derive it) and each program's average ticket and
    reward value, from the dashboard's small form."""
    cycle_text = str(form.get("cycle", "")).strip()
    try:
        days = int(cycle_text) if cycle_text else None
        values = {
            p.id: (
                parse_cents(str(form.get(f"ticket-{p.id}", ""))),
                parse_cents(str(form.get(f"reward-{p.id}", ""))),
            )
            for p in loyalty.programs(session=post.write, merchant=post.mine)
            if p.closed_at is None
        }
        loyalty.set_purchase_cycle(session=post.write, merchant=post.mine, days=days)
        for program_id, (ticket, reward) in values.items():
            loyalty.set_program_values(
                session=post.write, merchant=post.mine, program_id=program_id or 0,
                average_ticket_cents=ticket, reward_value_cents=reward,
            )  # fmt: skip
    except (ValueError, AppError):
        post.write.rollback()
        error = _(
            "Those numbers cannot be saved: a purchase cycle is %(lo)s to %(hi)s days (or empty), "
            "an amount is like 3,50 (or empty)."
        ) % {"lo": loyalty.CYCLE_DAYS[0], "hi": loyalty.CYCLE_DAYS[1]}
        return _dashboard(
            request, post.read, post.merchant, clock, settings, notice=error,
            status_code=422, numbers_error=error,
        )  # fmt: skip
    return see_other("/merchant/dashboard?done=numbers#numbers")


def _shown(chosen: service.OwnerDashboard, words: "Words") -> dict[str, Any]:
    """The dashboard template's figures, words and charts."""
    return {
        "d": chosen.figures,
        "feedback": chosen.feedback,
        "start": day_date(chosen.period.start).isoformat(),
        "end": day_date(chosen.period.end - 1).isoformat(),
        "today": chosen.today.isoformat(),
        "w": words,
        "charts": draw(chosen.figures, words),
        "segment_labels": segment_labels(),
        "segment_definitions": segment_definitions(chosen.figures.cycle),
        "flag_text": flag_text,
        "step_label": step_label,
        "way_in": chosen.way_in,
        "promotions": chosen.promotions,
        # Axis titles sit above their heat maps (inside, they ran into the column labels).
        "axis_titles": {
            "cohorts": _("Came back in month n after the first visit (%)"),
            "hours": _("Hour of the day"),
        },
    }


class Words:
    """Numbers, dates and hidden figures as the page shows them in one language."""

    def __init__(self, language: str, k: int) -> None:
        self.language = language
        self.k = k
        self.weekdays = [get_day_names("abbreviated", locale=language)[i] for i in range(7)]
        self.weekdays_long = [get_day_names("wide", locale=language)[i] for i in range(7)]

    def hidden_text(self) -> str:
        return _("fewer than %(k)s cards") % {"k": self.k}

    def masked_text(self) -> str:
        return _("hidden")

    def masked_why(self) -> str:
        return _(
            "Hidden because a figure about fewer than %(k)s cards could be worked out from it."
        ) % {"k": self.k}

    def chart_hidden(self) -> str:
        return _("hidden, to protect a group of fewer than %(k)s cards") % {"k": self.k}

    def number(self, value: float) -> str:
        if float(value).is_integer():
            return str(format_decimal(int(value), locale=self.language))
        return str(format_decimal(value, format="#,##0.0", locale=self.language))

    def percent(self, value: float) -> str:
        return str(format_percent(value, locale=self.language))

    def day(self, day: int, pattern: str = "d MMM") -> str:
        return str(format_date(day_date(day), pattern, locale=self.language))

    def long_day(self, day: int) -> str:
        return str(format_date(day_date(day), "medium", locale=self.language))

    def quarter(self, day: int) -> str:
        """The calendar quarter a day is in, e.g. "Q4 2026"."""
        return str(format_date(day_date(day), "QQQ yyyy", locale=self.language))

    def month(self, month: int) -> str:
        return str(format_date(month_date(month), "MMM yy", locale=self.language))

    def span(self, start: int, end: int) -> str:
        """A period given as local days [start, end), e.g. "3 Nov 2026 to 2 Dec 2026"."""
        first, last = self.long_day(start), self.long_day(end - 1)
        return first if start == end - 1 else f"{first}{EN_DASH}{last}"

    def show(self, figure: kpis.Figure | None, kind: str = "number") -> Markup:
        """A figure for the page: the number, "fewer than k cards", or a dash for nothing."""
        if figure is None:
            return Markup("")
        if figure.hidden and figure.small:
            return Markup('<span class="hidden-figure">{}</span>').format(self.hidden_text())
        if figure.hidden:
            return Markup('<span class="hidden-figure" title="{}">{}</span>').format(
                self.masked_why(), self.masked_text()
            )
        if figure.value is None:
            return Markup('<span class="muted">{}</span>').format(EN_DASH.strip())
        return escape(self.format(figure.value, kind))

    def cell(self, figure: kpis.Figure | None, kind: str = "number") -> Markup:
        """The same for a table cell: a hidden figure as a short "< k" (read out in full)."""
        if figure is not None and figure.hidden:
            text, short = (
                (self.hidden_text(), Markup("&lt;&#8239;{}").format(self.k))
                if figure.small
                else (self.masked_why(), Markup("&ndash;"))
            )
            return Markup(
                '<span class="hidden-figure" title="{0}"><span aria-hidden="true">{1}'
                '</span><span class="visually-hidden">{0}</span></span>'
            ).format(text, short)
        return self.show(figure, kind)

    def money(self, value: float, currency: str = service.CURRENCY) -> str:
        return str(format_currency(value, currency, locale=self.language))

    def cents(self, cents: int | None) -> str:
        """An entered amount as the form shows it again ("3,50"); empty for none."""
        if cents is None:
            return ""
        return str(format_decimal(cents / 100, format="0.00", locale=self.language))

    def format(self, value: float, kind: str) -> str:
        if kind == "percent":
            return self.percent(value)
        if kind == "money":
            return self.money(value)
        if kind == "decimal":
            return str(format_decimal(value, format="#,##0.0", locale=self.language))
        return self.number(value)

    def change(
        self, pair: kpis.Pair | kpis.Segment, kind: str = "number", better: str = "up"
    ) -> Markup:
        """The change against the previous period, signed and coloured good or bad; nothing
        when either figure is hidden. better="down" for figures that should shrink."""
        if pair.change is None or pair.current.hidden or pair.previous.hidden:
            return Markup("")
        delta = pair.change
        if kind == "percent":
            text = format_decimal(round(delta * 100, 1), format="#,##0.#", locale=self.language)
            text = _("%(n)s points") % {"n": text}
        elif kind == "money":
            text = self.money(abs(delta))
        else:
            text = self.format(abs(delta), "decimal" if kind == "decimal" else "number")
        if delta == 0:
            return Markup('<span class="change same">±0</span>')
        sign = "+" if delta > 0 else MINUS
        css = "good" if (delta > 0) == (better == "up") else "bad"
        if kind == "percent":
            text = text.lstrip("-" + MINUS)
        return Markup('<span class="change {}">{}{}</span>').format(css, sign, text)


def _values(figures: list[kpis.Figure]) -> list[float | None]:
    return [None if f.hidden else (f.value or 0.0) for f in figures]


def step_label(words: Words, d: kpis.Dashboard, step: kpis.Step) -> str:
    if d.period.days > 120:
        return words.month(month_of(step.end - 1))
    return words.day(step.start)


def nothing_to_draw(values: Sequence[float | None], words: Words) -> Markup | None:
    """A short empty state for a chart without a single figure above 0 to draw (a new shop's
    charts would be all hatching or a flat line); None when there is something."""
    if any(v for v in values):
        return None
    text = (
        _("Not drawn yet: each point would be about fewer than %(k)s cards.") % {"k": words.k}
        if any(v is None for v in values)
        else _("Nothing to draw yet: no visits in this period.")
    )
    return Markup('<p class="empty-chart">{}</p>').format(text)


def draw(d: kpis.Dashboard, words: Words) -> dict[str, Markup]:
    """Every chart of the page as SVG, or a short empty state where there is nothing to draw."""
    charts_drawn = _draw(d, words)
    shown = {
        "visits": [s.current for s in d.visit_steps] + [s.previous for s in d.visit_steps],
        "new_cards": [s.current for s in d.new_steps] + [s.previous for s in d.new_steps],
        "segments": [s.current for s in d.segments] + [s.previous for s in d.segments],
        "weekdays": list(d.weekdays),
        "hours": [f for row in d.heat for f in row],
    }
    for name, figures in shown.items():
        empty = nothing_to_draw(_values(figures), words)
        if empty is not None:
            charts_drawn[name] = empty
    return charts_drawn


def _draw(d: kpis.Dashboard, words: Words) -> dict[str, Markup]:
    hidden = words.chart_hidden()
    this, before = _("This period"), _("Previous period")
    span = words.span(d.period.start, d.period.end)

    def trend(chart_id: str, title: str, steps: list[kpis.Step]) -> Markup:
        return charts.line_chart(
            chart_id=chart_id,
            title=title,
            desc=_("%(what)s per step of %(span)s (solid line) and of the period before (dashed).")
            % {"what": title, "span": span},
            labels=[step_label(words, d, s) for s in steps],
            series=[
                charts.Series(this, _values([s.current for s in steps]), "current"),
                charts.Series(before, _values([s.previous for s in steps]), "previous"),
            ],
            fmt=words.number,
            hidden_label=hidden,
        )

    segment_names = segment_labels()
    # Month 0 is always 100 %: the chart starts at month 1 (the table keeps it), so this
    # month's new cohort has nothing to draw yet.
    drawn = [c for c in d.cohorts if c.shares[1] is not None]
    cohort_rows = [words.month(c.month) for c in drawn]
    cohort_values: list[list[float | None]] = [
        [math.nan if f is None else (None if f.hidden else f.value) for f in c.shares[1:]]
        for c in drawn
    ]
    percent: Callable[[float], str] = words.percent
    return {
        "visits": trend("chart-visits", _("Visits"), d.visit_steps),
        "new_cards": trend("chart-new", _("New cards"), d.new_steps),
        "segments": charts.hbar_chart(
            chart_id="chart-segments",
            title=_("Cards by lifecycle segment"),
            desc=_(
                "How many cards are in each segment at the end of the period (thin grey bar: "
                "at the end of the period before)."
            ),
            labels=[segment_names[s.name] for s in d.segments],
            values=_values([s.current for s in d.segments]),
            previous=_values([s.previous for s in d.segments]),
            fmt=words.number,
            hidden_label=hidden,
            hidden_short=words.masked_text(),
        ),
        "cohorts": Markup('<p class="muted">{}</p>').format(
            _("The months after the first cohort's first visit are still to come.")
        )
        if not drawn
        else charts.heat_map(
            chart_id="chart-cohorts",
            title=_("Retention by cohort"),
            desc=_(
                "Each row is the month of the cards' first visit; column n is month n after "
                "it; a cell is the share of those cards that came back in that month."
            ),
            rows=cohort_rows,
            columns=[str(n) for n in range(1, kpis.COHORT_MONTHS)],
            values=cohort_values,
            fmt=percent,
            hidden_label=hidden,
            cell_text=lambda v: str(round(v * 100)),
            relative=True,
        ),
        "weekdays": charts.bar_chart(
            chart_id="chart-weekdays",
            title=_("Visits by weekday"),
            desc=_("Visits on each day of the week in %(span)s.") % {"span": span},
            labels=words.weekdays,
            values=_values(d.weekdays),
            fmt=words.number,
            hidden_label=hidden,
        ),
        "hours": charts.heat_map(
            chart_id="chart-hours",
            title=_("Busiest hours"),
            desc=_("Visits by weekday (rows) and hour of the day (columns), local time.")
            + " "
            + span,
            rows=words.weekdays,
            columns=[str(h) for h in d.hours],
            values=[_values(row) for row in d.heat],
            fmt=words.number,
            hidden_label=hidden,
        ),
    }


def segment_labels() -> dict[str, str]:
    return {
        "new": _("New"),
        "returning": _("Returning"),
        "loyal": _("Loyal"),
        "at_risk": _("At risk"),
        "lapsed": _("Lapsed"),
    }


def segment_definitions(cycle: kpis.Cycle) -> dict[str, str]:
    """The segments in days of the shop's purchase cycle (two cycles: active; four: lapsed)."""
    days = {"n": cycle.active_days, "m": 2 * cycle.active_days}
    return {
        "new": _("First visit in the last %(n)s days.") % days,
        "returning": _("Visited in the last %(n)s days, after more than %(n)s days away.") % days,
        "loyal": _("Visited in the last %(n)s days and in the %(n)s days before.") % days,
        "at_risk": _("Last visit %(n)s to %(m)s days ago.") % days,
        "lapsed": _("Last visit more than %(m)s days ago.") % days,
    }


def flag_text(words: Words, flag: dict[str, Any]) -> str:
    day = words.long_day(flag["day"])
    if "scans" not in flag:  # a hidden device: the day and the reason, no figures
        if flag["reason"] == "volume":
            return _("%(day)s: far more scans than this device usually has") % {"day": day}
        return _("%(day)s: many cards stamped a second time that day") % {"day": day}
    if flag["reason"] == "volume":
        return _("%(day)s: %(scans)s scans, usually about %(usual)s a day") % {
            "day": day,
            "scans": words.number(flag["scans"]),
            "usual": words.number(round(flag["usual"])),
        }
    return _("%(day)s: %(repeats)s of %(scans)s scans stamped a card a second time that day") % {
        "day": day,
        "repeats": words.number(flag["repeats"]),
        "scans": words.number(flag["scans"]),
    }
