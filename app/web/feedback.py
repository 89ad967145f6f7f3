"""Feedback pages: the card's form and conversation, the review redirect, the merchant inbox."""

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from babel.dates import format_date, format_timedelta
from babel.numbers import format_decimal, format_percent
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup, escape
from sqlmodel import Session

from app.db import SessionDep, WriteSessionDep, engine_of, in_write_session
from app.dependencies import ClockDep, SettingsDep, now_of
from app.errors import AppError, NotFound
from app.feedback import service
from app.feedback.dependencies import AttemptsDep, LimitsDep
from app.feedback.scrub import KINDS, PLACEHOLDER
from app.inputs import Line, Text
from app.merchants import auth
from app.merchants.models import Merchant, merchant_zone
from app.ratelimit import first_click
from app.tokens.cards import load_card, parse_card
from app.tokens.dependencies import KeyringDep, keyring_of
from app.web import render
from app.web.i18n import activate, choose_language, current_language, format_day, format_moment
from app.web.i18n import gettext as _

router = APIRouter(include_in_schema=False)

FormText = Annotated[Text, Form()]

N_ = service.N_
RATING_WORDS = {
    1: N_("Very bad"),
    2: N_("Bad"),
    3: N_("Okay"),
    4: N_("Good"),
    5: N_("Very good"),
}
REMOVED_WORDS = {
    "email": N_("an e-mail address"),
    "url": N_("a link"),
    "iban": N_("a bank account number (IBAN)"),
    "phone": N_("a phone number"),
}
PERIODS = (7, 30, 90, 365)


# --- what every feedback page shows ------------------------------------------------------


def tag_label(tag: str) -> str:
    """A default tag in the reader's language; a merchant's own tag as they wrote it."""
    return _(service.DEFAULT_TAGS[tag]) if tag in service.DEFAULT_TAGS else tag


def comment_html(text: str) -> Markup:
    """The comment, escaped, with each removed part marked (and named in the reader's language)."""
    marker = Markup('<span class="removed">{}</span>').format(_("[removed]"))
    return marker.join(escape(part) for part in text.split(PLACEHOLDER))


def page_helpers(merchant: Merchant) -> dict[str, Any]:
    zone = merchant_zone(merchant)

    def when(moment: datetime | None) -> str:
        # Day and time as the reader's locale writes them ("6. Dez. 2026, 22:49", "Dec 6, 2026,
        # 10:49 PM"), read when the page is rendered, which knows the reader's region.
        if moment is None:
            return ""
        return format_moment(moment.replace(tzinfo=moment.tzinfo or UTC), zone)

    def day_of(moment: datetime) -> date:
        # The shop sees a feedback's day, never its time (privacy model 6).
        return moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(zone).date()

    return {
        "when": when,
        "day_of": day_of,
        "on_day": lambda moment: format_day(day_of(moment)),
        "tag_label": tag_label,
        "comment_html": comment_html,
        "rating_word": lambda n: _(RATING_WORDS[n]),
        "reply_unread": service.reply_unread,
        "tags_of": service.tags_of,
    }


def removed_text(kinds: list[str]) -> str:
    what = [_(REMOVED_WORDS[k]) for k in KINDS if k in kinds]
    if not what:
        return ""
    joined = (
        what[0]
        if len(what) == 1
        else _("%(list)s and %(last)s")
        % {
            "list": ", ".join(what[:-1]),
            "last": what[-1],
        }
    )
    return _(
        "We removed %(what)s from your comment. Feedback is anonymous, so nothing that could "
        "identify you is kept."
    ) % {"what": joined}


# --- the card's feedback page ------------------------------------------------------------


def speak(request: Request) -> None:
    """Use the visitor's language already for the texts made before the page is rendered."""
    activate(choose_language(request))


def _card(request: Request, session: Session, token: str) -> bytes:
    key = parse_card(keyring_of(request), token)
    load_card(session, key)
    return key.card_id


def _form_page(
    request: Request,
    session: Session,
    *,
    token: str,
    merchant: Merchant,
    card_id: bytes,
    status: int = 200,
    error: str | None = None,
    entered: dict[str, Any] | None = None,
    saved: bool = False,
    removed: list[str] | None = None,
) -> HTMLResponse:
    now = now_of(request)
    assert merchant.id is not None
    thread = service.thread(
        session=session, keyring=keyring_of(request), merchant=merchant, card_id=card_id, now=now
    )
    current = thread.current
    if entered is None and current is not None:
        entered = {
            "rating": current.rating,
            "recommend": current.recommend,
            "comment": current.comment,
            "tags": service.tags_of(current),
        }
    response = render(
        request,
        "feedback/form.html",
        status_code=status,
        token=token,
        merchant=merchant,
        thread=thread,
        can_give=thread.can_give,
        can_edit=thread.can_edit(now),
        current=current,
        editable_until=service.editable_until(current) if current else None,
        tags=service.merchant_tags(session=session, merchant_id=merchant.id),
        entered=entered or {},
        error=error,
        saved=saved,
        removed=removed_text(removed or []),
        review_link=service.review_link(merchant),
        no_visit=_(
            "Feedback opens after a visit: collect a stamp here and you can tell the shop how "
            "it was, for 30 days."
        ),
        **page_helpers(merchant),
    )
    # The page holds the card's token: never kept by a shared cache.
    response.headers["Cache-Control"] = "private, no-store"
    return response


@router.get("/c/{token}/feedback/{slug}")
def feedback_page(
    token: str, slug: str, request: Request, session: SessionDep, saved: str = "",
    removed: str = "",
) -> HTMLResponse:  # fmt: skip
    speak(request)
    card_id = _card(request, session, token)
    merchant = service.get_merchant(session=session, slug=slug)
    kinds = [k for k in removed.split(",") if k in KINDS]
    return _form_page(
        request, session, token=token, merchant=merchant, card_id=card_id, saved=bool(saved),
        removed=kinds,
    )  # fmt: skip


@router.post("/c/{token}/feedback/{slug}")
def send_feedback(
    token: str,
    slug: str,
    request: Request,
    session: WriteSessionDep,
    keyring: KeyringDep,
    clock: ClockDep,
    limits: LimitsDep,
    attempts: AttemptsDep,
    rating: FormText = "",
    recommend: FormText = "",
    comment: FormText = "",
    tags: Annotated[list[Line], Form()] = [],  # noqa: B006 (FastAPI copies the default)
    feedback_id: FormText = "",
) -> Response:
    """The form without JavaScript: the same service calls as the API, then back to the page."""
    speak(request)
    card_id = _card(request, session, token)
    merchant = service.get_merchant(session=session, slug=slug)
    form = service.FeedbackForm(rating, recommend, comment, tags, feedback_id)
    try:
        given = service.send_form(
            session=session, keyring=keyring, merchant=merchant, card_id=card_id, form=form,
            now=clock(), limits=limits, attempts=attempts,
        )  # fmt: skip
    except AppError as refusal:
        response = _form_page(
            request, session, token=token, merchant=merchant, card_id=card_id,
            entered=form.entered(), status=refusal.status, error=_(refusal.detail),
        )  # fmt: skip
        response.headers.update(refusal.headers)
        return response
    query = {"saved": "1", "removed": ",".join(given.removed)}
    return RedirectResponse(
        f"/c/{token}/feedback/{slug}?{urlencode(query)}#thanks", status_code=303
    )


# --- the review link ---------------------------------------------------------------------


@router.get("/r/{slug}")
def review_redirect(
    slug: str, request: Request, session: WriteSessionDep, clock: ClockDep
) -> RedirectResponse:
    """Count one click on the merchant's review link (per day, nothing else) and go there; a
    client's clicks on the same link count once an hour, so no one can inflate the figure."""
    merchant = service.get_merchant(session=session, slug=slug)
    target = service.review_target(merchant.review_url)
    if target is None:
        raise NotFound("This shop has no public review page yet.", code="no-review-link")
    if first_click(request, f"review:{merchant.id}", 3600):
        service.count_review_click(session=session, merchant=merchant, now=clock())
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


# --- the merchant's inbox ----------------------------------------------------------------


def _figures_view(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures as the page shows them, in the reader's language."""
    locale = current_language()
    k = figures["k"]
    hidden = _("fewer than %(k)s") % {"k": k}

    def percent(value: float | None) -> str:
        return hidden if value is None else format_percent(value, locale=locale)

    def decimal(value: float | None) -> str:
        return hidden if value is None else format_decimal(value, "0.0", locale=locale)

    nps = figures["nps"]
    reply = figures["median_reply_seconds"]
    weeks = figures["weekly"]
    top = max([w["count"] or 0 for w in weeks] + [k])
    clicks_by_week = {w["week"]: w["clicks"] for w in figures["review_clicks_weekly"]}
    return {
        "count": hidden if figures["count"] is None else str(figures["count"]),
        "average": decimal(figures["average_rating"]),
        "csat": percent(figures["csat"]),
        "nps": (
            f"{nps['score']:+d}"
            if nps is not None
            else ("-" if figures["nps_responses"] == 0 else hidden)
        ),
        "nps_unanswered": figures["nps_responses"] == 0,
        "nps_split": None
        if nps is None
        else {
            "promoters": percent(nps["promoters"]),
            "passives": percent(nps["passives"]),
            "detractors": percent(nps["detractors"]),
        },
        "response_rate": percent(figures["response_rate"]),
        "median_reply": hidden
        if figures["suppressed"]
        else (
            "-"
            if reply is None
            else format_timedelta(timedelta(seconds=reply), locale=locale, threshold=1.1)
        ),
        "clicks": figures["review_clicks"],
        "weeks": [
            {
                **w,
                "label": format_date(date.fromisoformat(w["week"]), "d MMM", locale=locale),
                "shown_count": hidden if w["suppressed"] else str(w["count"]),
                "shown_average": "-" if not w["count"] else decimal(w["average_rating"]),
                "clicks": clicks_by_week.get(w["week"], 0),
                # Bar height out of 100 for the little SVG chart.
                "bar": 0 if not w["count"] else round(100 * w["count"] / top),
            }
            for w in weeks
        ],
        "top_tags": figures["top_tags"],
        "tags_suppressed": figures["tags_suppressed"],
        "hidden_count": figures["hidden"],
        "k": k,
    }


NOTICES = {
    "replied": N_("Your reply was sent. The customer sees it on their card."),
    "hidden": N_("The feedback is hidden. It still counts in your figures."),
    "shown": N_("The feedback is shown again."),
    "tags": N_("Your tags were saved."),
}


def _inbox_view(
    merchant: Merchant,
    inbox: service.InboxPage,
    where: service.InboxFilter,
    filters: dict[str, Any],
) -> dict[str, Any]:
    """The inbox template's rows, filters and figures."""
    return {
        "merchant": merchant, "inbox": inbox, "rows": inbox.rows, "unread": inbox.unread,
        "unread_total": inbox.unread_total, "more": inbox.more, "where": where,
        "filters": filters, "query": lambda **change: urlencode({**filters, **change}),
        "days": filters["days"], "periods": PERIODS, "figures": _figures_view(inbox.figures),
        "tags": inbox.tags, "default_tags": service.DEFAULT_TAGS,
        "review_target": service.review_target(merchant.review_url), **page_helpers(merchant),
    }  # fmt: skip


@router.get("/merchant/feedback")
def inbox_page(
    request: Request,
    login: auth.CurrentLogin,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    rating: str = "",
    tag: str = "",
    unanswered: str = "",
    page: int = 0,
    days: int = 30,
    done: str = "",
) -> HTMLResponse:
    speak(request)
    merchant = login.merchant
    assert merchant.id is not None
    now = clock()
    days = days if days in PERIODS else 30
    where = service.InboxFilter(
        rating=int(rating) if rating in ("1", "2", "3", "4", "5") else None,
        tag=tag[:64] or None,
        unanswered=bool(unanswered),
        page=max(0, min(page, 10_000)),
    )
    inbox = service.inbox_page(
        session=session, merchant_id=merchant.id, where=where, days=days, now=now,
        k=settings.k_anonymity,
    )  # fmt: skip
    filters = {"rating": rating, "tag": tag, "unanswered": unanswered, "days": days}
    notice = _(NOTICES[done]) if done in NOTICES else None
    response = render(
        request, "feedback/inbox.html", **_inbox_view(merchant, inbox, where, filters),
        notice=notice,
    )  # fmt: skip
    session.close()
    # Shown once as new, then seen: like opening a letter. A short write of its own, after the
    # page is made, so the read above never holds the write lock.
    in_write_session(
        engine_of(request), service.mark_seen, merchant_id=merchant.id,
        feedback_ids=list(inbox.unread), now=now,
    )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


def _back(request: Request, done: str, feedback_id: str = "") -> RedirectResponse:
    """Back to the inbox with its filters (kept in the form's hidden `back` field)."""
    anchor = f"#f-{feedback_id}" if feedback_id else ""
    return RedirectResponse(f"/merchant/feedback?done={done}{anchor}", status_code=303)


@router.post("/merchant/feedback/{feedback_id}/reply")
def reply(
    feedback_id: str,
    request: Request,
    login: auth.CurrentLogin,
    _csrf: auth.CsrfChecked,
    write: WriteSessionDep,
    text: FormText = "",
) -> Response:
    assert login.merchant.id is not None
    service.reply(
        session=write, merchant_id=login.merchant.id, feedback_id=feedback_id, text=text,
        now=now_of(request),
    )  # fmt: skip
    return _back(request, "replied", feedback_id)


@router.post("/merchant/feedback/{feedback_id}/hide")
def hide(
    feedback_id: str,
    request: Request,
    login: auth.CurrentLogin,
    _csrf: auth.CsrfChecked,
    write: WriteSessionDep,
    hidden: FormText = "1",
) -> Response:
    assert login.merchant.id is not None
    service.hide(
        session=write, merchant_id=login.merchant.id, feedback_id=feedback_id,
        hidden=hidden == "1", now=now_of(request),
    )  # fmt: skip
    return _back(request, "hidden" if hidden == "1" else "shown", feedback_id)


@router.post("/merchant/feedback/tags")
def save_tags(
    request: Request,
    login: auth.CurrentLogin,
    _csrf: auth.CsrfChecked,
    write: WriteSessionDep,
    defaults: Annotated[list[Line], Form()] = [],  # noqa: B006 (FastAPI copies the default)
    own: FormText = "",
) -> Response:
    assert login.merchant.id is not None
    chosen = [d for d in service.DEFAULT_TAGS if d in defaults]
    chosen += [line for line in own.replace(",", "\n").splitlines() if line.strip()]
    service.set_merchant_tags(
        session=write, merchant_id=login.merchant.id, tags=chosen, now=now_of(request)
    )
    return _back(request, "tags")
