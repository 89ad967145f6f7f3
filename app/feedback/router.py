"""Feedback API: give and change feedback with the card's token; a card's replies."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlmodel import Session

from app.db import SessionDep, WriteSessionDep
from app.errors import AppError, problem_responses
from app.feedback import service
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
from app.tokens.crypto import TokenError, card_ref, find_card
from app.tokens.dependencies import CardKey, ValidCard, load_card, parse_card

router = APIRouter(prefix="/api/v1", tags=["feedback"])

_RESPONSES = problem_responses(400, 401, 403, 404, 409, 410, 413, 422, 429)


def feedback_limits() -> service.Limits:
    """How much feedback is taken (tests override this dependency)."""
    return service.Limits()


def attempt_limiter(request: Request) -> service.AttemptLimiter:
    """One in-memory limiter per app, made on first use."""
    state = request.app.state
    if not hasattr(state, "feedback_attempts"):
        state.feedback_attempts = service.AttemptLimiter()
    limiter: service.AttemptLimiter = state.feedback_attempts
    return limiter


LimitsDep = Annotated[service.Limits, Depends(feedback_limits)]
AttemptsDep = Annotated[service.AttemptLimiter, Depends(attempt_limiter)]


class NotACard(AppError):
    status = 422
    title = "Not a treu card"


def card_in_body(request: Request, session: Session, token: str) -> CardKey:
    """The card named in a body: a token or a card URL; unknown and deleted cards refused."""
    keyring = request.app.state.keyring
    try:
        canonical, card_id = find_card(keyring, token)
    except TokenError:
        raise NotACard("This is not a treu card.", code="not-a-card") from None
    key = CardKey(canonical, card_id, card_ref(keyring, card_id))
    load_card(session, key)
    return key


def review_link(merchant: Merchant) -> str | None:
    """The counting redirect to the merchant's public review page, if it has one."""
    if service.review_target(merchant.review_url) is None:
        return None
    return f"/r/{merchant.slug}"


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
        review_link=review_link(merchant),
        reply=row.reply,
        replied_at=row.replied_at.isoformat() if row.replied_at else None,
    )


@router.post("/feedback", status_code=201, response_model=FeedbackOut, responses=_RESPONSES)
def give_feedback(
    body: FeedbackIn,
    request: Request,
    session: WriteSessionDep,
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
        keyring=request.app.state.keyring,
        merchant=merchant,
        card_id=card.card_id,
        fields=body,
        now=request.app.state.clock(),
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
    limits: LimitsDep,
    attempts: AttemptsDep,
) -> FeedbackOut:
    """Change feedback within 24 hours of giving it, with the same card."""
    card = card_in_body(request, session, body.token)
    given = service.edit_feedback(
        session=session,
        keyring=request.app.state.keyring,
        feedback_id=feedback_id,
        card_id=card.card_id,
        fields=body,
        now=request.app.state.clock(),
        limits=limits,
        attempts=attempts,
    )
    merchant = session.get(Merchant, given.feedback.merchant_id)
    assert merchant is not None
    return feedback_out(given.feedback, merchant, given.removed)


@router.get("/cards/{token}/feedback", response_model=CardFeedback, responses=_RESPONSES)
def card_feedback(request: Request, card: ValidCard, session: SessionDep) -> CardFeedback:
    """Per merchant where the card has a visit or feedback: may it give feedback, and the
    shop's replies (`unread` until marked read)."""
    now = request.app.state.clock()
    threads = service.card_threads(
        session=session, keyring=request.app.state.keyring, card_id=card.key.card_id, now=now
    )
    return CardFeedback(
        merchants=[
            MerchantFeedback(
                slug=t.merchant.slug,
                name=t.merchant.name,
                can_give_feedback=t.can_give,
                can_edit_feedback=t.can_edit(now),
                feedback_url=f"/c/{card.key.token}/feedback/{t.merchant.slug}",
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
            for t in threads
        ]
    )


@router.post("/cards/{token}/feedback/read", responses=_RESPONSES)
def mark_replies_read(
    token: str, request: Request, session: WriteSessionDep, body: ReadIn | None = None
) -> dict[str, int]:
    """Mark the shops' replies as read (one shop's with `merchant`, else all)."""
    key = parse_card(request.app.state.keyring, token)
    load_card(session, key)
    if body is not None and body.merchant:
        merchants = [service.get_merchant(session=session, slug=body.merchant)]
    else:
        merchants = [
            t.merchant
            for t in service.card_threads(
                session=session,
                keyring=request.app.state.keyring,
                card_id=key.card_id,
                now=request.app.state.clock(),
            )
        ]
    marked = service.mark_replies_read(
        session=session,
        keyring=request.app.state.keyring,
        card_id=key.card_id,
        merchants=merchants,
        now=request.app.state.clock(),
    )
    return {"marked": marked}
