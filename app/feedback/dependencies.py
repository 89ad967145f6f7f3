"""What feedback routes and pages share: the limits, the attempt limiter, the card in a body."""

from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from app.feedback import service
from app.tokens.cards import CardKey, load_card, scanned_card
from app.tokens.dependencies import keyring_of


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


def card_in_body(request: Request, session: Session, token: str) -> CardKey:
    """The card named in a body: a token or a card URL; unknown and deleted cards refused."""
    key = scanned_card(keyring_of(request), token)
    load_card(session, key)
    return key
