"""Cards: create, view across merchants, export, delete, restore."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.analytics import service as analytics
from app.errors import NotFound
from app.feedback import service as feedback
from app.ledger.models import Balance, LedgerEntry
from app.merchants.models import Merchant, Program
from app.tokens import crypto
from app.tokens.crypto import Keyring
from app.tokens.dependencies import CardDeleted, CardKey, existing
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


def holders_by_merchant(
    db: Session | Connection, keyring: Keyring, card_id: bytes
) -> dict[str, int]:
    """The card's pseudonym at every merchant, computed now; none of them is stored with it."""
    merchant_ids = db.execute(_SELECT_MERCHANT_IDS).scalars().all()
    return {crypto.holder_for(keyring, card_id, m): m for m in merchant_ids}


_card = Card.__table__  # type: ignore[attr-defined]
_balance = Balance.__table__  # type: ignore[attr-defined]
_program = Program.__table__  # type: ignore[attr-defined]
_merchant = Merchant.__table__  # type: ignore[attr-defined]
_SELECT_MERCHANT_IDS = sa_select(_merchant.c.id)
_SELECT_CARD = sa_select(_card).where(_card.c.ref == bindparam("ref"))
_SELECT_SHOPS = (
    sa_select(
        _balance,
        _program.c.name.label("program_name"),
        _program.c.stamps_required,
        _program.c.reward_text,
        _merchant.c.slug,
        _merchant.c.name.label("merchant_name"),
    )
    .join(_program, _program.c.id == _balance.c.program_id)
    .join(_merchant, _merchant.c.id == _balance.c.merchant_id)
    .where(_balance.c.holder.in_(bindparam("holders", expanding=True)))
    .order_by(_balance.c.last_visit_at.desc())
)


def card_row(db: Session | Connection, key: CardKey) -> Row[Any]:
    """The card's row as the core statement reads it (see dependencies.existing)."""
    return existing(db.execute(_SELECT_CARD, {"ref": key.ref}).first())


def card_shops(db: Session | Connection, keyring: Keyring, card_id: bytes) -> list[Row[Any]]:
    """Each balance of this card, at every merchant, with its program and merchant, the latest
    visit first: columns of balance, then program_name, stamps_required, reward_text, slug and
    merchant_name. Core statements, not the ORM: the open card page asks every few seconds."""
    holders = holders_by_merchant(db, keyring, card_id)
    if not holders:
        return []
    rows = db.execute(_SELECT_SHOPS, {"holders": list(holders)}).all()
    # A holder is only meaningful at its own merchant.
    return [r for r in rows if holders.get(r.holder) == r.merchant_id]


def wallet_update(
    keyring: Keyring, key: CardKey, card: Row[Any], merchant_ids: set[int], today: date
) -> bytes | None:
    """The card's new sealed wallet if it or the last-seen day must change, else None."""
    known = set(crypto.open_wallet(keyring, key.card_id, card.sealed_wallet))
    if known >= merchant_ids and card.last_seen_day == today:
        return None
    return crypto.seal_wallet(keyring, key.card_id, sorted(known | merchant_ids))


def remember_visits(*, session: Session, key: CardKey, sealed_wallet: bytes, today: date) -> None:
    """Keep the sealed wallet and the last-seen day current (see wallet_update).

    This runs when the card holder looks at the card, never inside a stamp's transaction, so
    the card row's changes cannot be matched to a merchant's ledger by time or transaction id.
    """
    session.execute(
        update(Card)
        .where(col(Card.ref) == key.ref)
        .values(sealed_wallet=sealed_wallet, last_seen_day=today)
    )


def export_card(*, session: Session, keyring: Keyring, key: CardKey, card: Card) -> dict[str, Any]:
    """Everything stored about this card, as its holder may take it away."""
    holders = holders_by_merchant(session, keyring, key.card_id)
    merchants: dict[int, Merchant] = {
        m.id: m for m in session.exec(select(Merchant)).all() if m.id is not None
    }
    balances = card_shops(session, keyring, key.card_id)
    visited = {b.merchant_id for b in balances}
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
                        "program": b.program_name,
                        "stamps": b.stamps,
                        "lifetime_stamps": b.lifetime_stamps,
                        "redeemed": b.redeemed,
                        "visits": b.visits,
                        "first_visit_at": b.first_visit_at.isoformat(),
                        "last_visit_at": b.last_visit_at.isoformat(),
                    }
                    for b in balances
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
