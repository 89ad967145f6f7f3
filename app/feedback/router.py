"""Feedback API: give and change feedback with the card's token; a card's replies."""

from datetime import datetime

from fastapi import APIRouter, Request

from app.db import SessionDep, WriteSessionDep
from app.dependencies import ClockDep
from app.errors import problem_responses
from app.feedback import service
from app.feedback.dependencies import AttemptsDep, LimitsDep, card_in_body
from app.feedback.models import Feedback
from app.feedback.schemas import (
    CardFeedback,
    FeedbackEdit,
    FeedbackIn,
    FeedbackOut,
    MerchantFeedback,
    MerchantRef,
    ReadIn,
    ReplyOut,
)
from app.merchants.models import Merchant
from app.tokens.cards import load_card, parse_card
from app.tokens.dependencies import KeyringDep, ValidCard

router = APIRouter(prefix="/api/v1", tags=["feedback"])

_RESPONSES = problem_responses(400, 401, 403, 404, 409, 410, 413, 422, 429)


def feedback_out(row: Feedback, merchant: Merchant, removed: tuple[str, ...]) -> FeedbackOut:
    return FeedbackOut(
        id=row.id,
        merchant=MerchantRef(slug=merchant.slug, name=merchant.name),
        rating=row.rating,
        recommend=row.recommend,
        comment=row.comment,
        tags=service.tags_of(row),
        created_at=row.created_at.isoformat(),
        editable_until=service.editable_until(row).isoformat(),
        removed=list(removed),
        review_link=service.review_link(merchant),
        reply=row.reply,
        replied_at=row.replied_at.isoformat() if row.replied_at else None,
    )


@router.post("/feedback", status_code=201, response_model=FeedbackOut, responses=_RESPONSES)
def give_feedback(
    body: FeedbackIn,
    request: Request,
    session: WriteSessionDep,
    keyring: KeyringDep,
    clock: ClockDep,
    limits: LimitsDep,
    attempts: AttemptsDep,
) -> FeedbackOut:
    """Give feedback for the card's latest visit (within 30 days); 403 without one.

    Personal data in the comment (e-mail, phone, URL, IBAN) is removed before it is stored;
    `removed` says what was taken out. Everyone gets the shop's review link, whatever the rating.
    """
    card = card_in_body(request, session, body.token)
    merchant = service.get_merchant(session=session, slug=body.merchant)
    given = service.give_feedback(
        session=session,
        keyring=keyring,
        merchant=merchant,
        card_id=card.card_id,
        fields=body,
        now=clock(),
        limits=limits,
        attempts=attempts,
    )
    return feedback_out(given.feedback, merchant, given.removed)


@router.put("/feedback/{feedback_id}", response_model=FeedbackOut, responses=_RESPONSES)
def edit_feedback(
    feedback_id: str,
    body: FeedbackEdit,
    request: Request,
    session: WriteSessionDep,
    keyring: KeyringDep,
    clock: ClockDep,
    limits: LimitsDep,
    attempts: AttemptsDep,
) -> FeedbackOut:
    """Change feedback within 24 hours of giving it, with the same card."""
    card = card_in_body(request, session, body.token)
    given = service.edit_feedback(
        session=session,
        keyring=keyring,
        feedback_id=feedback_id,
        card_id=card.card_id,
        fields=body,
        now=clock(),
        limits=limits,
        attempts=attempts,
    )
    merchant = session.get(Merchant, given.feedback.merchant_id)
    assert merchant is not None
    return feedback_out(given.feedback, merchant, given.removed)


@router.get("/cards/{token}/feedback", response_model=CardFeedback, responses=_RESPONSES)
def card_feedback(
    card: ValidCard, session: SessionDep, keyring: KeyringDep, clock: ClockDep
) -> CardFeedback:
    """Per merchant where the card has a visit or feedback: may it give feedback, and the
    shop's replies (`unread` until marked read)."""
    now = clock()
    threads = service.card_threads(
        session=session, keyring=keyring, card_id=card.key.card_id, now=now
    )
    return CardFeedback(merchants=[_thread_out(t, now, card.key.token) for t in threads])


def _thread_out(t: service.Thread, now: datetime, token: str) -> MerchantFeedback:
    return MerchantFeedback(
        slug=t.merchant.slug,
        name=t.merchant.name,
        can_give_feedback=t.can_give,
        can_edit_feedback=t.can_edit(now),
        feedback_url=f"/c/{token}/feedback/{t.merchant.slug}",
        replies=[
            ReplyOut(
                text=f.reply,
                replied_at=f.replied_at.isoformat(),
                unread=service.reply_unread(f),
                in_reply_to={
                    "rating": f.rating,
                    "comment": f.comment,
                    "given_at": f.created_at.isoformat(),
                },
            )
            for f in t.history
            if f.reply is not None and f.replied_at is not None
        ],
    )


@router.post("/cards/{token}/feedback/read", responses=_RESPONSES)
def mark_replies_read(
    token: str,
    session: WriteSessionDep,
    keyring: KeyringDep,
    clock: ClockDep,
    body: ReadIn | None = None,
) -> dict[str, int]:
    """Mark the shops' replies as read (one shop's with `merchant`, else all)."""
    key = parse_card(keyring, token)
    load_card(session, key)
    marked = service.mark_card_replies_read(
        session=session, keyring=keyring, card_id=key.card_id,
        slug=body.merchant if body is not None else None, now=clock(),
    )  # fmt: skip
    return {"marked": marked}
