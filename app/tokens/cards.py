"""A card named by a token: verified, and found among the cards made here (no other domain)."""

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, insert
from sqlmodel import Session

from app.tokens.crypto import Keyring, TokenError, card_ref, find_card, verify_token
from app.tokens.exceptions import NOT_A_CARD, CardDeleted, NotACard, UnknownCard
from app.tokens.models import Card


@dataclass(frozen=True)
class CardKey:
    """A verified token, its card id and the card row's key (a keyed hash of the id)."""

    token: str
    card_id: bytes
    ref: str


def parse_card(keyring: Keyring, token: str) -> CardKey:
    """A token named in a URL path: exactly the token, nothing around it (404 otherwise)."""
    try:
        card_id = verify_token(keyring, token)
    except TokenError:
        raise NotACard(status=404) from None
    return CardKey(token, card_id, card_ref(keyring, card_id))


def scanned_card(
    keyring: Keyring, scanned: str, detail: str = NOT_A_CARD, *, status: int | None = None
) -> CardKey:
    """The card in what a scanner typed or a body sent: a token or a card URL (422 otherwise)."""
    try:
        token, card_id = find_card(keyring, scanned)
    except TokenError:
        raise NotACard(detail, status=status) from None
    return CardKey(token, card_id, card_ref(keyring, card_id))


def load_card(session: Session, key: CardKey) -> Card:
    return existing(session.get(Card, key.ref))


C = TypeVar("C", Card, Row[Any])


def existing(card: C | None) -> C:
    """A card row as found: 404 for a card never made here, 410 for one deleted by its owner."""
    if card is None:
        raise UnknownCard()
    if card.deleted_day is not None:
        raise CardDeleted()
    return card


def import_cards(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Write card rows as given (the demo's history)."""
    if rows:
        conn.execute(insert(Card.__table__), rows)  # type: ignore[attr-defined]
