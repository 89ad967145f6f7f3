"""Feedback: give and change it after a visit, read it as a merchant, reply, count review clicks.

A card is only ever known here by its holder at one merchant. Whether a card may give feedback
is decided from that holder's ledger entries of the last 30 days, found through the ledger's
(merchant_id, holder, created_at) index: no scan, however long the ledger grows.
"""

import hmac
import json
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import delete, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.analytics.kpis import Period
from app.analytics.rollups import day_date
from app.errors import NotFound
from app.feedback import figures as feedback_figures
from app.feedback.exceptions import (
    AlreadyGiven,
    EditWindowClosed,
    InvalidFeedback,
    InvalidForm,
    NoRecentVisit,
    TooMuchFeedback,
)
from app.feedback.models import Feedback, FeedbackSettings, ReviewClick
from app.feedback.schemas import COMMENT_CHARS, FeedbackFields
from app.feedback.scrub import normalise, scrub
from app.ledger import service as ledger
from app.merchants.exceptions import MerchantError
from app.merchants.models import Merchant, merchant_zone
from app.merchants.service import review_url_from
from app.tokens.crypto import Keyring, holder_for


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; it is translated where shown."""
    return message


VISIT_WINDOW = timedelta(days=30)
EDIT_WINDOW = timedelta(hours=24)
REPLY_CHARS = 1000
TAG_CHARS = 30
MAX_MERCHANT_TAGS = 8
# The default tags: keys stored with the feedback, labels translated where they are shown.
DEFAULT_TAGS = {
    "service": N_("Service"),
    "quality": N_("Quality"),
    "waiting_time": N_("Waiting time"),
    "price": N_("Price"),
}


@dataclass(frozen=True)
class Limits:
    """How much feedback is taken; refused requests store nothing."""

    per_card_day: int = 3  # new feedback per card at one merchant in 24 hours
    per_merchant_hour: int = 60  # new feedback at one merchant in an hour
    edits: int = 10  # changes to one feedback
    attempts: int = 20  # write attempts per card at one merchant ...
    attempts_seconds: int = 600  # ... in this many seconds, refused ones included


class AttemptLimiter:
    """Write attempts per holder, in memory: refused attempts count too, yet nothing is stored.

    Keyed by holder (one card at one merchant), never by address. Each app instance keeps its
    own window; the durable limits are the ones counted from the feedback table.
    """

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, holder: str, now: datetime, limits: Limits) -> None:
        t = now.timestamp()
        with self._lock:
            if len(self._hits) >= self.MAX_KEYS:
                self._forget_before(t - limits.attempts_seconds)
            hits = self._hits.setdefault(holder, deque())
            while hits and hits[0] <= t - limits.attempts_seconds:
                hits.popleft()
            if len(hits) >= limits.attempts:
                retry = int(hits[0] + limits.attempts_seconds - t) + 1
                raise TooMuchFeedback("Too many attempts from this card; try again later.", retry)
            hits.append(t)

    def _forget_before(self, cutoff: float) -> None:
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= cutoff]:
            del self._hits[key]
        if len(self._hits) >= self.MAX_KEYS:
            self._hits.clear()


@dataclass(frozen=True)
class Visit:
    entry_id: str
    at: datetime


@dataclass(frozen=True)
class Given:
    feedback: Feedback
    removed: tuple[str, ...]


def new_feedback_id() -> str:
    return uuid.uuid4().hex


def dump_tags(tags: list[str]) -> str:
    return json.dumps(tags, ensure_ascii=False)


def tags_of(row: Feedback | FeedbackSettings) -> list[str]:
    loaded = json.loads(row.tags or "[]")
    return [str(t) for t in loaded] if isinstance(loaded, list) else []


def get_merchant(*, session: Session, slug: str) -> Merchant:
    merchant = session.exec(select(Merchant).where(Merchant.slug == slug)).first()
    if merchant is None or merchant.id is None:
        raise NotFound("There is no shop with this name here.", code="unknown-merchant")
    return merchant


# --- visits ------------------------------------------------------------------------------


def latest_visit(*, session: Session, merchant_id: int, holder: str, now: datetime) -> Visit | None:
    """The holder's latest stamp or redemption here in the last 30 days that was not undone."""
    found = ledger.latest_visit(
        session=session, merchant_id=merchant_id, holder=holder, since=now - VISIT_WINDOW
    )
    return None if found is None else Visit(*found)


# --- tags --------------------------------------------------------------------------------


def merchant_tags(*, session: Session, merchant_id: int) -> list[str]:
    """The tags this merchant offers: its own choice, or the default ones."""
    row = session.get(FeedbackSettings, merchant_id)
    return tags_of(row) if row is not None else list(DEFAULT_TAGS)


def set_merchant_tags(
    *, session: Session, merchant_id: int, tags: list[str], now: datetime
) -> list[str]:
    """Replace the merchant's tags; empty entries and repeats are dropped."""
    chosen: list[str] = []
    for raw in tags:
        tag = re.sub(r"\s+", " ", normalise(raw))
        # A default tag typed by its English name keeps its translations.
        tag = next(
            (key for key, label in DEFAULT_TAGS.items() if label.lower() == tag.lower()), tag
        )
        if not tag or tag.lower() in (t.lower() for t in chosen):
            continue
        if len(tag) > TAG_CHARS:
            raise InvalidFeedback(f"A tag has at most {TAG_CHARS} characters.", code="tag-too-long")
        chosen.append(tag)
    if len(chosen) > MAX_MERCHANT_TAGS:
        raise InvalidFeedback(f"Offer at most {MAX_MERCHANT_TAGS} tags.", code="too-many-tags")
    row = session.get(FeedbackSettings, merchant_id)
    if row is None:
        row = FeedbackSettings(merchant_id=merchant_id, updated_at=now)
    row.tags, row.updated_at = dump_tags(chosen), now
    session.add(row)
    return chosen


# --- giving feedback ---------------------------------------------------------------------


def _clean(
    *, session: Session, merchant_id: int, fields: FeedbackFields
) -> tuple[str, list[str], tuple[str, ...]]:
    """Check the comment's length and the tags, and scrub the comment."""
    comment = normalise(fields.comment)
    if len(comment) > COMMENT_CHARS:
        raise InvalidFeedback("A comment has at most 500 characters.", code="comment-too-long")
    offered = merchant_tags(session=session, merchant_id=merchant_id)
    tags = list(dict.fromkeys(fields.tags))
    if any(t not in offered for t in tags):
        raise InvalidFeedback("Choose tags from the ones this shop offers.", code="unknown-tag")
    scrubbed = scrub(comment)
    return scrubbed.text, tags, scrubbed.removed


def _check_volume(
    *, session: Session, merchant_id: int, holder: str, now: datetime, limits: Limits
) -> None:
    # Both counts read at most `limit` rows through an index, as the limit keeps them small.
    by_card = session.exec(
        select(func.count())
        .select_from(Feedback)
        .where(
            Feedback.merchant_id == merchant_id,
            Feedback.holder == holder,
            col(Feedback.created_at) > now - timedelta(days=1),
        )
    ).one()
    if by_card >= limits.per_card_day:
        raise TooMuchFeedback("This card gave enough feedback here for today.", 3600)
    by_merchant = session.exec(
        select(func.count())
        .select_from(Feedback)
        .where(
            Feedback.merchant_id == merchant_id,
            col(Feedback.created_at) > now - timedelta(hours=1),
        )
    ).one()
    if by_merchant >= limits.per_merchant_hour:
        raise TooMuchFeedback(
            "This shop is receiving unusually much feedback right now; please try again later.",
            600,
        )


def give_feedback(
    *,
    session: Session,
    keyring: Keyring,
    merchant: Merchant,
    card_id: bytes,
    fields: FeedbackFields,
    now: datetime,
    limits: Limits,
    attempts: AttemptLimiter,
) -> Given:
    """Store feedback for the card's latest visit; refused before anything is written."""
    assert merchant.id is not None
    holder = holder_for(keyring, card_id, merchant.id)
    attempts.hit(holder, now, limits)
    visit = latest_visit(session=session, merchant_id=merchant.id, holder=holder, now=now)
    if visit is None:
        raise NoRecentVisit()
    existing = session.exec(
        select(Feedback.id).where(
            Feedback.merchant_id == merchant.id, Feedback.visit_entry_id == visit.entry_id
        )
    ).first()
    if existing is not None:
        raise AlreadyGiven(existing)
    _check_volume(session=session, merchant_id=merchant.id, holder=holder, now=now, limits=limits)
    comment, tags, removed = _clean(session=session, merchant_id=merchant.id, fields=fields)
    row = Feedback(
        merchant_id=merchant.id,
        id=new_feedback_id(),
        holder=holder,
        visit_entry_id=visit.entry_id,
        rating=fields.rating,
        recommend=fields.recommend,
        comment=comment,
        tags=dump_tags(tags),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        # The same visit's feedback sent twice at once: the other request won.
        session.rollback()
        raise AlreadyGiven(_feedback_for_visit(session, merchant.id, visit.entry_id)) from None
    return Given(row, removed)


def _feedback_for_visit(session: Session, merchant_id: int, entry_id: str) -> str:
    found = session.exec(
        select(Feedback.id).where(
            Feedback.merchant_id == merchant_id, Feedback.visit_entry_id == entry_id
        )
    ).first()
    return found or ""


def own_feedback(
    *, session: Session, keyring: Keyring, card_id: bytes, feedback_id: str
) -> Feedback:
    """A feedback of this card; someone else's is as unknown as a missing one."""
    row = session.get(Feedback, feedback_id) if len(feedback_id) <= 32 else None
    if row is None or not hmac.compare_digest(
        row.holder, holder_for(keyring, card_id, row.merchant_id)
    ):
        raise NotFound("This card has no such feedback.", code="unknown-feedback")
    return row


def edit_feedback(
    *,
    session: Session,
    keyring: Keyring,
    feedback_id: str,
    card_id: bytes,
    fields: FeedbackFields,
    now: datetime,
    limits: Limits,
    attempts: AttemptLimiter,
) -> Given:
    """Change feedback within 24 hours of giving it; the shop sees it as new again."""
    row = own_feedback(session=session, keyring=keyring, card_id=card_id, feedback_id=feedback_id)
    attempts.hit(row.holder, now, limits)
    if now >= row.created_at + EDIT_WINDOW:
        raise EditWindowClosed()
    if row.edits >= limits.edits:
        raise TooMuchFeedback("This feedback was changed often enough.", 3600)
    comment, tags, removed = _clean(session=session, merchant_id=row.merchant_id, fields=fields)
    row.rating, row.recommend, row.comment = fields.rating, fields.recommend, comment
    row.tags, row.updated_at, row.edits, row.read_at = dump_tags(tags), now, row.edits + 1, None
    session.add(row)
    session.flush()
    return Given(row, removed)


def editable_until(row: Feedback) -> datetime:
    return row.created_at + EDIT_WINDOW


# --- the card's side ---------------------------------------------------------------------


@dataclass
class Thread:
    """Everything one card sees of its feedback at one merchant."""

    merchant: Merchant
    holder: str
    visit: Visit | None
    current: Feedback | None  # the feedback for the latest visit, if given
    history: list[Feedback] = field(default_factory=list)  # newest first

    @property
    def can_give(self) -> bool:
        return self.visit is not None and self.current is None

    def can_edit(self, now: datetime) -> bool:
        return self.current is not None and now < editable_until(self.current)

    @property
    def unread_replies(self) -> int:
        return sum(1 for f in self.history if reply_unread(f))


def reply_unread(row: Feedback) -> bool:
    if row.reply is None or row.replied_at is None:
        return False
    return row.reply_read_at is None or row.reply_read_at < row.replied_at


HISTORY = 20


def thread(
    *, session: Session, keyring: Keyring, merchant: Merchant, card_id: bytes, now: datetime
) -> Thread:
    """The card's feedback and the shop's replies at one merchant, and what it may do next."""
    assert merchant.id is not None
    holder = holder_for(keyring, card_id, merchant.id)
    visit = latest_visit(session=session, merchant_id=merchant.id, holder=holder, now=now)
    history = list(
        session.exec(
            select(Feedback)
            .where(Feedback.merchant_id == merchant.id, Feedback.holder == holder)
            .order_by(col(Feedback.created_at).desc())
            .limit(HISTORY)
        ).all()
    )
    current = None
    if visit is not None:
        current = next((f for f in history if f.visit_entry_id == visit.entry_id), None)
    return Thread(merchant, holder, visit, current, history)


def card_threads(
    *, session: Session, keyring: Keyring, card_id: bytes, now: datetime
) -> list[Thread]:
    """One thread per merchant where the card has a visit or feedback, by merchant name."""
    merchants = {m.id: m for m in session.exec(select(Merchant)).all() if m.id is not None}
    holders = {holder_for(keyring, card_id, m): m for m in merchants}
    if not holders:
        return []
    given = session.exec(
        select(Feedback.merchant_id, Feedback.holder).where(col(Feedback.holder).in_(list(holders)))
    ).all()
    # A holder is only meaningful at its own merchant.
    ids = ledger.visited(session=session, holders=holders) | {
        m for m, h in given if holders.get(h) == m
    }
    found = [
        thread(session=session, keyring=keyring, merchant=merchants[m], card_id=card_id, now=now)
        for m in ids
    ]
    return sorted(found, key=lambda t: t.merchant.name.lower())


def mark_card_replies_read(
    *, session: Session, keyring: Keyring, card_id: bytes, slug: str | None, now: datetime
) -> int:
    """Mark the replies to this card as read: one shop's (by slug), or every shop's."""
    if slug:
        merchants = [get_merchant(session=session, slug=slug)]
    else:
        threads = card_threads(session=session, keyring=keyring, card_id=card_id, now=now)
        merchants = [t.merchant for t in threads]
    return mark_replies_read(
        session=session, keyring=keyring, card_id=card_id, merchants=merchants, now=now
    )


def mark_replies_read(
    *, session: Session, keyring: Keyring, card_id: bytes, merchants: list[Merchant], now: datetime
) -> int:
    """Mark the shops' replies to this card as read; returns how many were unread."""
    marked = 0
    for merchant in merchants:
        assert merchant.id is not None
        holder = holder_for(keyring, card_id, merchant.id)
        result = session.execute(
            update(Feedback)
            .where(
                col(Feedback.merchant_id) == merchant.id,
                col(Feedback.holder) == holder,
                col(Feedback.replied_at).is_not(None),
                (col(Feedback.reply_read_at).is_(None))
                | (col(Feedback.reply_read_at) < col(Feedback.replied_at)),
            )
            .values(reply_read_at=now)
        )
        marked += result.rowcount  # type: ignore[attr-defined]
    return marked


def card_export(*, session: Session, keyring: Keyring, card_id: bytes) -> list[dict[str, Any]]:
    """The card's feedback and the replies to it, for the card holder's data export."""
    merchants = {m.id: m for m in session.exec(select(Merchant)).all() if m.id is not None}
    holders = {holder_for(keyring, card_id, m): m for m in merchants}
    if not holders:
        return []
    rows = session.exec(
        select(Feedback)
        .where(col(Feedback.holder).in_(list(holders)))
        .order_by(col(Feedback.created_at))
    ).all()
    return [
        {
            "merchant": merchants[f.merchant_id].slug,
            "rating": f.rating,
            "recommend": f.recommend,
            "comment": f.comment,
            "tags": tags_of(f),
            "given_at": f.created_at.isoformat(),
            "reply": f.reply,
            "replied_at": f.replied_at.isoformat() if f.replied_at else None,
        }
        for f in rows
        if holders.get(f.holder) == f.merchant_id
    ]


def forget_card(*, session: Session, keyring: Keyring, card_id: bytes) -> int:
    """Delete the card's feedback everywhere (the card holder deletes the card)."""
    merchant_ids = [m for m in session.exec(select(Merchant.id)).all() if m is not None]
    deleted = 0
    for merchant_id in merchant_ids:
        result = session.execute(
            delete(Feedback).where(
                col(Feedback.merchant_id) == merchant_id,
                col(Feedback.holder) == holder_for(keyring, card_id, merchant_id),
            )
        )
        deleted += result.rowcount  # type: ignore[attr-defined]
    return deleted


# --- the form without JavaScript ---------------------------------------------------------


@dataclass(frozen=True)
class FeedbackForm:
    """The feedback form as posted without JavaScript: every field as typed."""

    rating: str = ""
    recommend: str = ""
    comment: str = ""
    tags: list[str] = field(default_factory=list)
    feedback_id: str = ""

    def entered(self) -> dict[str, Any]:
        """What the form shows again when it is refused."""
        return {
            "rating": int(self.rating) if self.rating.isdigit() else None,
            "recommend": int(self.recommend) if self.recommend.isdigit() else None,
            "comment": self.comment,
            "tags": self.tags,
        }


# Why the schema refused a form, by the field it names first.
FORM_PROBLEMS = {
    "rating": N_("Please choose how your visit was, from 1 to 5."),
    "recommend": N_("Please choose a number from 0 to 10, or none."),
    "comment": N_("A comment has at most 500 characters."),
}


def send_form(
    *,
    session: Session,
    keyring: Keyring,
    merchant: Merchant,
    card_id: bytes,
    form: FeedbackForm,
    now: datetime,
    limits: Limits,
    attempts: AttemptLimiter,
) -> Given:
    """Check the form as the API checks its body, then give the feedback (or change it, when
    the form names it)."""
    try:
        fields = FeedbackFields(
            rating=form.rating or 0,
            recommend=form.recommend or None,
            comment=form.comment,
            tags=form.tags,
        )
    except ValidationError as exc:
        field_name = str(exc.errors()[0]["loc"][0])
        raise InvalidForm(FORM_PROBLEMS.get(field_name, FORM_PROBLEMS["comment"])) from None
    if form.feedback_id:
        return edit_feedback(
            session=session, keyring=keyring, feedback_id=form.feedback_id, card_id=card_id,
            fields=fields, now=now, limits=limits, attempts=attempts,
        )  # fmt: skip
    return give_feedback(
        session=session, keyring=keyring, merchant=merchant, card_id=card_id, fields=fields,
        now=now, limits=limits, attempts=attempts,
    )  # fmt: skip


# --- the merchant's inbox ----------------------------------------------------------------


@dataclass(frozen=True)
class InboxFilter:
    rating: int | None = None
    tag: str | None = None
    unanswered: bool = False
    page: int = 0


INBOX_PAGE = 25


def _local_day(moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants that bound the merchant-local day of `moment` (UTC, naive or aware)."""
    day = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(zone).date()
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    return start, datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)


def inbox(
    *, session: Session, merchant: Merchant, where: InboxFilter
) -> tuple[list[Feedback], bool]:
    """The merchant's feedback, newest day first, filtered; and whether there is an older page.

    Within a day the order is the feedback's random id, not its time: the inbox shows the day
    only, and an order by time would tell the shop which came first, and so roughly when each
    was written (privacy model 6). The page is cut from whole days: its rows by time, widened
    to the whole of the first and the last day they touch, then sorted by (day, id).
    """
    zone = merchant_zone(merchant)
    chosen: list[Any] = [col(Feedback.merchant_id) == merchant.id]
    if where.rating is not None:
        chosen.append(col(Feedback.rating) == where.rating)
    if where.tag:
        tag = json.dumps(where.tag, ensure_ascii=False)
        chosen.append(col(Feedback.tags).contains(tag, autoescape=True))
    if where.unanswered:
        chosen.append(col(Feedback.reply).is_(None))
    first = where.page * INBOX_PAGE
    ends = session.exec(
        select(col(Feedback.created_at))
        .where(*chosen)
        .order_by(col(Feedback.created_at).desc())
        .offset(first)
        .limit(INBOX_PAGE + 1)
    ).all()
    if not ends:
        return [], False
    newest_end = _local_day(ends[0], zone)[1]
    oldest_start = _local_day(ends[-1], zone)[0]
    newer = session.exec(
        select(func.count()).where(*chosen, col(Feedback.created_at) >= newest_end)
    ).one()
    days = session.exec(
        select(Feedback).where(
            *chosen, col(Feedback.created_at) >= oldest_start, col(Feedback.created_at) < newest_end
        )
    ).all()
    ordered = sorted(days, key=lambda f: (-_local_day(f.created_at, zone)[0].timestamp(), f.id))
    rows = ordered[first - newer : first - newer + INBOX_PAGE + 1]
    return rows[:INBOX_PAGE], len(rows) > INBOX_PAGE


@dataclass(frozen=True)
class InboxPage:
    """One page of the merchant's inbox, with the figures of the last `days` days."""

    rows: list[Feedback]
    more: bool
    unread: set[str]
    unread_total: int
    figures: dict[str, Any]
    tags: list[str]


def inbox_page(
    *, session: Session, merchant_id: int, where: InboxFilter, days: int, now: datetime, k: int
) -> InboxPage:
    """What the inbox shows: the page of feedback, what of it is new, and the figures."""
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound("There is no such shop.")
    rows, more = inbox(session=session, merchant=merchant, where=where)
    return InboxPage(
        rows=rows,
        more=more,
        unread={r.id for r in rows if r.read_at is None},
        unread_total=unread_count(session=session, merchant_id=merchant_id),
        figures=figures(
            # Up to and including this second.
            session=session,
            merchant_id=merchant_id,
            start=now - timedelta(days=days),
            end=now + timedelta(seconds=1),
            k=k,
        ),
        tags=merchant_tags(session=session, merchant_id=merchant_id),
    )


def unread_count(*, session: Session, merchant_id: int) -> int:
    return session.exec(
        select(func.count())
        .select_from(Feedback)
        .where(Feedback.merchant_id == merchant_id, col(Feedback.read_at).is_(None))
    ).one()


def mark_seen(
    *, session: Session, merchant_id: int, feedback_ids: list[str], now: datetime
) -> None:
    """The merchant has seen these (the inbox showed them)."""
    if feedback_ids:
        session.execute(
            update(Feedback)
            .where(
                col(Feedback.merchant_id) == merchant_id,
                col(Feedback.id).in_(feedback_ids),
                col(Feedback.read_at).is_(None),
            )
            .values(read_at=now)
        )


def merchants_feedback(*, session: Session, merchant_id: int, feedback_id: str) -> Feedback:
    row = session.get(Feedback, feedback_id) if len(feedback_id) <= 32 else None
    if row is None or row.merchant_id != merchant_id:
        raise NotFound("There is no such feedback.", code="unknown-feedback")
    return row


def reply(
    *, session: Session, merchant_id: int, feedback_id: str, text: str, now: datetime
) -> Feedback:
    """Reply to a feedback (or change the reply); the card sees it as new."""
    row = merchants_feedback(session=session, merchant_id=merchant_id, feedback_id=feedback_id)
    text = normalise(text)
    if not text:
        raise InvalidFeedback("Write a reply first.", code="empty-reply")
    if len(text) > REPLY_CHARS:
        raise InvalidFeedback("A reply has at most 1000 characters.", code="reply-too-long")
    row.reply, row.replied_at, row.reply_read_at = text, now, None
    row.read_at = row.read_at or now
    session.add(row)
    return row


def hide(
    *, session: Session, merchant_id: int, feedback_id: str, hidden: bool, now: datetime
) -> Feedback:
    """Hide abusive feedback from the inbox list; it stays in every count, flagged."""
    row = merchants_feedback(session=session, merchant_id=merchant_id, feedback_id=feedback_id)
    row.hidden_at = (row.hidden_at or now) if hidden else None
    row.read_at = row.read_at or now
    session.add(row)
    return row


# --- review link -------------------------------------------------------------------------


def review_target(review_url: str) -> str | None:
    """Where the review link leads: a web address as given, or Google's page for a Place ID;
    None for none, or for a stored value the one check (review_url_from) would refuse now."""
    try:
        return review_url_from(review_url) or None
    except MerchantError:
        return None


def count_review_click(*, session: Session, merchant: Merchant, now: datetime) -> None:
    """One more click on the merchant's review link today (the shop's day): nothing else."""
    day = now.astimezone(merchant_zone(merchant)).date()
    table = ReviewClick.__table__  # type: ignore[attr-defined]
    make_insert = (
        sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert
    )
    stmt = make_insert(table).values(merchant_id=merchant.id, day=day, clicks=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.merchant_id, table.c.day], set_={"clicks": table.c.clicks + 1}
    )
    session.execute(stmt)


def review_clicks(
    *, session: Session, merchant_id: int, first: date, last: date
) -> dict[date, int]:
    rows = session.exec(
        select(col(ReviewClick.day), col(ReviewClick.clicks)).where(
            ReviewClick.merchant_id == merchant_id,
            col(ReviewClick.day) >= first,
            col(ReviewClick.day) <= last,
        )
    ).all()
    return dict(rows)


# --- figures -----------------------------------------------------------------------------


def figures(
    *, session: Session, merchant_id: int, start: datetime, end: datetime, k: int
) -> dict[str, Any]:
    """CSAT, average rating, NPS, weekly trend, top tags, response rate, median reply time and
    review-link clicks for [start, end), with groups smaller than k suppressed."""
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound("There is no such shop.", code="unknown-merchant")
    zone = merchant_zone(merchant)
    rows = session.exec(
        select(Feedback).where(
            Feedback.merchant_id == merchant_id,
            col(Feedback.created_at) >= start,
            col(Feedback.created_at) < end,
        )
    ).all()
    numbers: dict[str, int] = {}  # one number per card for counting, never the holder itself
    rated = [
        feedback_figures.Rated(
            created_at=f.created_at,
            rating=f.rating,
            recommend=f.recommend,
            tags=tuple(tags_of(f)),
            replied_at=f.replied_at,
            hidden=f.hidden_at is not None,
            card=numbers.setdefault(f.holder, len(numbers)),
        )
        for f in rows
    ]
    first = start.astimezone(zone).date()
    last = (end - timedelta(seconds=1)).astimezone(zone).date()
    clicks = review_clicks(session=session, merchant_id=merchant_id, first=first, last=last)
    return feedback_figures.summarise(
        rated, start=start, end=end, tz=zone, k=k, clicks_by_day=clicks
    )


def review_link(merchant: Merchant) -> str | None:
    """The counting redirect to the merchant's public review page, if it has one."""
    if review_target(merchant.review_url) is None:
        return None
    return f"/r/{merchant.slug}"


def period_figures(
    *, session: Session, merchant: Merchant, period: Period, k: int
) -> dict[str, Any]:
    """The dashboard's feedback summary for a period of local days (CSAT, rating, NPS)."""
    zone = merchant_zone(merchant)
    start, end = (
        datetime.combine(day_date(d), time(0), zone).astimezone(UTC)
        for d in (period.start, period.end)
    )
    assert merchant.id is not None
    return figures(session=session, merchant_id=merchant.id, start=start, end=end, k=k)
