"""The card page's service, called directly: the card's stamps per shop, its sealed wallet, and
a deleted card refused (SQLite and PostgreSQL)."""

import pytest
from fastapi import FastAPI
from sqlmodel import Session

from app.tokens import service
from app.tokens.cards import CardKey
from app.tokens.exceptions import CardDeleted
from tests.helpers.cards import book, issue_card
from tests.helpers.clock import Clock
from tests.helpers.shops import Shop

BASE_URL = "http://treu.test"


def read(app: FastAPI, card: CardKey, clock: Clock) -> service.CardRead:
    with app.state.engine.connect() as conn:
        return service.read_card(
            db=conn, keyring=app.state.keyring, key=card, now=clock(), base_url=BASE_URL
        )


def remember(app: FastAPI, card: CardKey, clock: Clock, sealed_wallet: bytes) -> None:
    with Session(app.state.engine) as session:
        service.remember_visits(
            session=session, key=card, sealed_wallet=sealed_wallet, today=clock().date()
        )
        session.commit()


def test_the_card_lists_its_stamps_per_shop(
    app: FastAPI, clock: Clock, shop: Shop, other_shop: Shop
) -> None:
    card = issue_card(app)
    book(app, other_shop, card, count=7)  # 5 make a loaf
    view = read(app, card, clock).view
    # Only the shop where it collected stamps.
    assert [(c.merchant.slug, c.stamps, c.rewards_available) for c in view.cards] == [
        (other_shop.slug, 7, 1)
    ]
    assert view.cards[0].program.reward == "1 loaf"
    assert view.card_url == f"{BASE_URL}/c/{card.token}"


def test_a_visit_to_a_new_shop_asks_for_a_new_wallet_once(
    app: FastAPI, clock: Clock, shop: Shop, other_shop: Shop
) -> None:
    card = issue_card(app)
    book(app, shop, card)
    first = read(app, card, clock).sealed_wallet
    assert first is not None
    remember(app, card, clock, first)
    # Remembered the same day: nothing to write when the page asks again.
    assert read(app, card, clock).sealed_wallet is None
    book(app, other_shop, card)
    assert read(app, card, clock).sealed_wallet is not None


def test_a_deleted_card_is_refused(app: FastAPI, clock: Clock, shop: Shop) -> None:
    card = issue_card(app)
    book(app, shop, card)
    with Session(app.state.engine) as session:
        service.delete_card(session=session, keyring=app.state.keyring, key=card, now=clock())
        session.commit()
    with pytest.raises(CardDeleted):
        read(app, card, clock)
