"""The card named in a path: a verified token, its card id, and its card row."""

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Row
from sqlmodel import Session

from app.db import SessionDep
from app.errors import AppError, NotFound
from app.tokens.crypto import Keyring, TokenError, card_ref, verify_token
from app.tokens.models import Card


@dataclass(frozen=True)
class CardKey:
    token: str
    card_id: bytes
    ref: str


class CardDeleted(AppError):
    status = 410
    title = "Card deleted"


def parse_card(keyring: Keyring, token: str) -> CardKey:
    """A token named in a URL path: exactly the token, nothing around it."""
    try:
        card_id = verify_token(keyring, token)
    except TokenError:
        raise NotFound(
            "This is not a treu card.", title="Not a treu card", code="not-a-card"
        ) from None
    return CardKey(token, card_id, card_ref(keyring, card_id))


def load_card(session: Session, key: CardKey) -> Card:
    return existing(session.get(Card, key.ref))


C = TypeVar("C", Card, Row[Any])


def existing(card: C | None) -> C:
    """A card row as found: 404 for a card never made here, 410 for one deleted by its owner."""
    if card is None:
        raise NotFound("This card is not known here.", title="Unknown card", code="unknown-card")
    if card.deleted_day is not None:
        raise CardDeleted("This card was deleted by its owner.", code="card-deleted")
    return card


@dataclass(frozen=True)
class ValidCardInfo:
    key: CardKey
    card: Card


def valid_card(token: str, request: Request, session: SessionDep) -> ValidCardInfo:
    key = parse_card(request.app.state.keyring, token)
    return ValidCardInfo(key, load_card(session, key))


ValidCard = Annotated[ValidCardInfo, Depends(valid_card)]
