"""Cards: create, view across merchants, export, delete, restore."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.analytics.rollups import local_slot, zone
from app.errors import NotFound
from app.feedback import service as feedback
from app.ledger import service as ledger
from app.ledger.projections import record_card_made
from app.loyalty import rules
from app.merchants.branding import logo_url
from app.merchants.models import Merchant
from app.tokens import crypto, qr
from app.tokens.cards import CardKey, existing
from app.tokens.crypto import Keyring
from app.tokens.exceptions import CardDeleted
from app.tokens.models import Card
from app.tokens.schemas import (
    BonusShown,
    CardBalance,
    CardShop,
    CardView,
    LevelOut,
    NextTierOut,
    ProgramRef,
    TierOut,
)


@dataclass(frozen=True)
class NewCard:
    token: str
    card_id: bytes


def create_card(
    *, session: Session, keyring: Keyring, now: datetime, printed: bool = False
) -> NewCard:
    """Make a new anonymous card: a random id, signed; only a keyed hash of it is stored."""
    card_id = crypto.new_card_id()
    today = now.date()
    ref = crypto.card_ref(keyring, card_id)
    session.add(Card(ref=ref, created_day=today, last_seen_day=today, printed=printed))
    session.flush()
    return NewCard(crypto.sign_card(keyring, card_id), card_id)


def count_poster_card(*, session: Session, slug: str, now: datetime) -> None:
    """One more card made from this shop's page (what its poster opens) on its local day.

    A count only, and written in a transaction of its own after the card's: a shared one would
    tie the card row to the shop by its transaction id (privacy model 3)."""
    merchant = session.exec(select(Merchant).where(Merchant.slug == slug)).first()
    if merchant is not None and merchant.id is not None:
        day, _ = local_slot(now, zone(merchant.timezone))
        record_card_made(session.connection(), merchant_id=merchant.id, day=day)


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
        raise CardDeleted()
    return NewCard(crypto.sign_card(keyring, card_id), card_id)


def holders_by_merchant(
    db: Session | Connection, keyring: Keyring, card_id: bytes
) -> dict[str, int]:
    """The card's pseudonym at every merchant, computed now; none of them is stored with it."""
    merchant_ids = db.execute(_SELECT_MERCHANT_IDS).scalars().all()
    return {crypto.holder_for(keyring, card_id, m): m for m in merchant_ids}


_card = Card.__table__  # type: ignore[attr-defined]
_merchant = Merchant.__table__  # type: ignore[attr-defined]
_SELECT_MERCHANT_IDS = sa_select(_merchant.c.id)
_SELECT_CARD = sa_select(_card).where(_card.c.ref == bindparam("ref"))


def card_row(db: Session | Connection, key: CardKey) -> Row[Any]:
    """The card's row as the core statement reads it (see dependencies.existing)."""
    return existing(db.execute(_SELECT_CARD, {"ref": key.ref}).first())


def card_shops(db: Session | Connection, keyring: Keyring, card_id: bytes) -> list[Row[Any]]:
    """Each balance of this card, at every merchant, with its program and merchant, the latest
    visit first: columns of balance, then program_name, stamps_required, reward_text, slug and
    merchant_name. Core statements, not the ORM: the open card page asks every few seconds."""
    return ledger.card_balances(db, holders_by_merchant(db, keyring, card_id))


@dataclass(frozen=True)
class CardRead:
    """What the card page shows, and the card row's new sealed wallet if it needs one."""

    view: CardView
    sealed_wallet: bytes | None


def read_card(
    *, db: Session | Connection, keyring: Keyring, key: CardKey, now: datetime, base_url: str
) -> CardRead:
    """The card's stamps at every merchant where it has collected any (three indexed reads,
    two more for reward levels and tiers where it has stamps)."""
    today = now.date()
    card = card_row(db, key)
    shops = card_shops(db, keyring, key.card_id)
    sealed = wallet_update(keyring, key, card, {s.merchant_id for s in shops}, today)
    view = CardView(
        cards=card_balances(db, shops, now, keyring=keyring),
        recovery_code=crypto.recovery_code(key.card_id),
        card_url=qr.card_url(base_url, key.token),
    )
    return CardRead(view, sealed)


def card_balances(
    db: Session | Connection, shops: list[Row[Any]], now: datetime, *, keyring: Keyring
) -> list[CardBalance]:
    """Each balance as the card page shows it: stamps, reward levels, tier, expiry."""
    ladder = ledger.ladders(db, shops)
    bonuses = ledger.latest_bonuses(db, shops, now)
    out = []
    for s in shops:
        tiers = ladder.tiers.get(s.merchant_id, [])
        status = ledger.status_stamps(shops, s.merchant_id, now) if tiers else 0
        tier, ahead = rules.tier_of(tiers, status), rules.next_tier_of(tiers, status)
        last_here = max(b.last_visit_at for b in shops if b.merchant_id == s.merchant_id)
        expires = ledger.expires_on(s, last_here)
        shown = [
            BonusShown(
                promotion_id=p,
                title=title if title is not None else (tier.name if tier else ""),
                stamps=n,
            )
            for p, title, n in bonuses.get((s.merchant_id, s.program_id), [])
        ]
        out.append(
            CardBalance(
                merchant=CardShop(
                    slug=s.slug,
                    name=s.merchant_name,
                    accent_color=s.accent_color,
                    logo_url=logo_url(s.slug, s.logo_version),
                ),
                code=crypto.shop_code(keyring, s.holder),
                program=ProgramRef(
                    id=s.program_id,
                    name=s.program_name,
                    stamps_required=s.stamps_required,
                    reward=s.reward_text,
                ),
                stamps=s.stamps,
                rewards_available=s.stamps // s.stamps_required,
                # With these the card page tells a stamp, a redemption and their undoing apart.
                lifetime_stamps=s.lifetime_stamps,
                redeemed=s.redeemed,
                last_visit_at=s.last_visit_at.isoformat(),
                levels=[
                    LevelOut(
                        id=level.id,
                        stamps=level.stamps,
                        reward=level.reward_text,
                        available=s.stamps >= level.stamps,
                    )
                    for level in ladder.levels.get(s.program_id, [])
                ],
                tier=TierOut(name=tier.name, perk=tier.perk_text) if tier else None,
                next_tier=(
                    NextTierOut(
                        name=ahead.name, lifetime_stamps_needed=ahead.lifetime_stamps - status
                    )
                    if ahead
                    else None
                ),
                expires_on=expires.isoformat() if expires else None,
                ended=s.archived_at is not None,
                bonus=shown,
            )
        )
    return out


def wallet_update(
    keyring: Keyring, key: CardKey, card: Row[Any], merchant_ids: set[int], today: date
) -> bytes | None:
    """The card's new sealed wallet if it or the last-seen day must change, else None.

    A card that has seen no shop yet keeps no wallet at all (an empty one is written only as
    b""), so that purge_idle_cards can tell it apart without opening anything.
    """
    known = set(crypto.open_wallet(keyring, key.card_id, card.sealed_wallet))
    if known >= merchant_ids and card.last_seen_day == today:
        return None
    if not known | merchant_ids:
        return b""
    return crypto.seal_wallet(keyring, key.card_id, sorted(known | merchant_ids))


def remember_visits(*, session: Session, key: CardKey, sealed_wallet: bytes, today: date) -> None:
    """Keep the sealed wallet and the last-seen day current (see wallet_update).

    This runs when the card holder looks at the card, never inside a stamp's transaction, so
    the card row's changes cannot be matched to a merchant's ledger by time or transaction id.
    """
    session.execute(
        update(Card)
        .where(col(Card.ref) == key.ref)
        .values(sealed_wallet=sealed_wallet or None, last_seen_day=today)
    )


def purge_idle_cards(*, session: Session, today: date, idle_days: int) -> int:
    """Remove one-tap cards that no shop ever stamped, as far as their own page saw (no
    wallet), and that were not seen for `idle_days`: what a script making cards by the million
    leaves behind. Printed and deleted cards stay. Returns how many went."""
    idle = (
        delete(Card)
        .where(
            col(Card.sealed_wallet).is_(None),
            col(Card.printed).is_(False),
            col(Card.deleted_day).is_(None),
            col(Card.last_seen_day) < today - timedelta(days=idle_days),
        )
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(idle).rowcount)  # type: ignore[attr-defined]


def export_card(*, session: Session, keyring: Keyring, key: CardKey, card: Card) -> dict[str, Any]:
    """Everything stored about this card, as its holder may take it away."""
    holders = holders_by_merchant(session, keyring, key.card_id)
    merchants: dict[int, Merchant] = {
        m.id: m for m in session.exec(select(Merchant)).all() if m.id is not None
    }
    balances = card_shops(session, keyring, key.card_id)
    visited = {b.merchant_id for b in balances}
    entries = ledger.card_entries(
        session=session, holders={h: m for h, m in holders.items() if m in visited}
    )
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
                    if e.merchant_id == merchant_id
                ],
            }
        )
    return out


def delete_card(*, session: Session, keyring: Keyring, key: CardKey, now: datetime) -> None:
    """Delete the card and everything tied to it at every shop; the token is refused after.

    It leaves the shops' figures too, as if it had never been there (ledger.forget_card).
    """
    feedback.forget_card(session=session, keyring=keyring, card_id=key.card_id)
    ledger.forget_card(session=session, holders=holders_by_merchant(session, keyring, key.card_id))
    session.execute(
        update(Card)
        .where(col(Card.ref) == key.ref)
        .values(sealed_wallet=None, deleted_day=now.date())
    )
