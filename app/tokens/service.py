"""Cards: create, view across merchants, export, delete, restore."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from app.analytics import service as analytics
from app.errors import NotFound
from app.feedback import service as feedback
from app.ledger.models import Balance, LedgerEntry
from app.merchants.models import Merchant, Program
from app.tokens import crypto
from app.tokens.crypto import Keyring
from app.tokens.dependencies import CardDeleted, CardKey
from app.tokens.models import Card


@dataclass(frozen=True)
class NewCard:
    token: str
    card_id: bytes


def create_card(*, session: Session, keyring: Keyring, now: datetime) -> NewCard:
    """Make a new anonymous card: a random id, signed; only a keyed hash of it is stored."""
    card_id = crypto.new_card_id()
    today = now.date()
    session.add(Card(ref=crypto.card_ref(keyring, card_id), created_day=today, last_seen_day=today))
    session.flush()
    return NewCard(crypto.sign_card(keyring, card_id), card_id)


def restore_card(*, session: Session, keyring: Keyring, recovery_code: str) -> NewCard:
    """Rebuild a card's token from its recovery code (the card id itself)."""
    try:
        card_id = crypto.card_id_from_recovery_code(recovery_code)
    except crypto.TokenError:
        raise NotFound("That is not a recovery code.", code="bad-recovery-code") from None
    card = session.get(Card, crypto.card_ref(keyring, card_id))
    if card is None:
        raise NotFound("No card has this recovery code. Check it for typos.", code="unknown-card")
    if card.deleted_day is not None:
        raise CardDeleted("This card was deleted by its owner.", code="card-deleted")
    return NewCard(crypto.sign_card(keyring, card_id), card_id)


def holders_by_merchant(session: Session, keyring: Keyring, card_id: bytes) -> dict[str, int]:
    """The card's pseudonym at every merchant, computed now; none of them is stored with it."""
    merchant_ids = session.exec(select(Merchant.id)).all()
    return {crypto.holder_for(keyring, card_id, m): m for m in merchant_ids if m is not None}


def card_balances(
    *, session: Session, keyring: Keyring, key: CardKey
) -> list[tuple[Balance, Program, Merchant]]:
    """Every balance of this card, at every merchant, ordered by last visit."""
    holders = holders_by_merchant(session, keyring, key.card_id)
    if not holders:
        return []
    query = (
        select(Balance, Program, Merchant)
        .join(Program, col(Program.id) == Balance.program_id)
        .join(Merchant, col(Merchant.id) == Balance.merchant_id)
        .where(col(Balance.holder).in_(list(holders)))
        .order_by(col(Balance.last_visit_at).desc())
    )
    rows = session.exec(query).all()
    # A holder is only meaningful at its own merchant.
    return [(b, p, m) for b, p, m in rows if holders.get(b.holder) == b.merchant_id]


def remember_visits(
    *, session: Session, keyring: Keyring, key: CardKey, card: Card, merchant_ids: set[int],
    now: datetime,
) -> bool:  # fmt: skip
    """Keep the sealed wallet and the last-seen day current; write only when they changed.

    This runs when the card holder looks at the card, never inside a stamp's transaction, so
    the card row's changes cannot be matched to a merchant's ledger by time or transaction id.
    """
    known = set(crypto.open_wallet(keyring, key.card_id, card.sealed_wallet))
    today = now.date()
    if known >= merchant_ids and card.last_seen_day == today:
        return False
    sealed = crypto.seal_wallet(keyring, key.card_id, sorted(known | merchant_ids))
    session.execute(
        update(Card)
        .where(col(Card.ref) == key.ref)
        .values(sealed_wallet=sealed, last_seen_day=today)
    )
    return True


def export_card(*, session: Session, keyring: Keyring, key: CardKey, card: Card) -> dict[str, Any]:
    """Everything stored about this card, as its holder may take it away."""
    holders = holders_by_merchant(session, keyring, key.card_id)
    merchants: dict[int, Merchant] = {
        m.id: m for m in session.exec(select(Merchant)).all() if m.id is not None
    }
    balances = card_balances(session=session, keyring=keyring, key=key)
    visited = {b.merchant_id for b, _, _ in balances}
    entries = session.exec(
        select(LedgerEntry)
        .where(col(LedgerEntry.holder).in_([h for h, m in holders.items() if m in visited]))
        .order_by(col(LedgerEntry.created_at))
    ).all()
    out: dict[str, Any] = {
        "card": {
            "created_day": card.created_day.isoformat(),
            "last_seen_day": card.last_seen_day.isoformat(),
            "recovery_code": crypto.recovery_code(key.card_id),
            "visited_merchants": sorted(merchants[m].slug for m in visited),
        },
        "merchants": [],
        "note": (
            "treu stores no name, e-mail, phone number or address. Each shop knows this card "
            "only under its own pseudonym (holder), which no other shop can link."
        ),
    }
    out["feedback"] = feedback.card_export(session=session, keyring=keyring, card_id=key.card_id)
    for merchant_id in sorted(visited):
        merchant = merchants[merchant_id]
        out["merchants"].append(
            {
                "merchant": {"slug": merchant.slug, "name": merchant.name},
                "balances": [
                    {
                        "program": p.name,
                        "stamps": b.stamps,
                        "lifetime_stamps": b.lifetime_stamps,
                        "redeemed": b.redeemed,
                        "visits": b.visits,
                        "first_visit_at": b.first_visit_at.isoformat(),
                        "last_visit_at": b.last_visit_at.isoformat(),
                    }
                    for b, p, _ in balances
                    if b.merchant_id == merchant_id
                ],
                "ledger": [
                    {
                        "id": e.id,
                        "kind": e.kind,
                        "delta": e.delta,
                        "created_at": e.created_at.isoformat(),
                    }
                    for e in entries
                    if e.merchant_id == merchant_id and holders.get(e.holder) == merchant_id
                ],
            }
        )
    return out


def delete_card(*, session: Session, keyring: Keyring, key: CardKey, now: datetime) -> None:
    """Delete the card and everything tied to it at every shop; the token is refused after.

    Its ledger entries go too: entries left without a balance would mark, at each shop, the
    records of a deleted card, and a single deletion would link its records across shops. The
    shops keep what it contributed only as counts in their rollups.
    """
    feedback.forget_card(session=session, keyring=keyring, card_id=key.card_id)
    conn = session.connection()
    for holder, merchant_id in holders_by_merchant(session, keyring, key.card_id).items():
        mine = (col(Balance.merchant_id) == merchant_id, col(Balance.holder) == holder)
        held = session.exec(select(Balance.program_id, Balance.stamps).where(*mine)).all()
        analytics.forget_holder(conn, merchant_id=merchant_id, holder=holder, held=held)
        session.execute(delete(Balance).where(*mine))
        session.execute(
            delete(LedgerEntry).where(
                col(LedgerEntry.merchant_id) == merchant_id, col(LedgerEntry.holder) == holder
            )
        )
    session.execute(
        update(Card)
        .where(col(Card.ref) == key.ref)
        .values(sealed_wallet=None, deleted_day=now.date())
    )
