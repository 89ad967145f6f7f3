"""The feedback service called directly: the demo seed, the card's export and delete, the form
without JavaScript, and the merchant's inbox."""

import random

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.feedback import service
from app.feedback.demo import seed_demo_feedback
from app.feedback.exceptions import InvalidForm
from app.feedback.models import Feedback, ReviewClick
from app.feedback.service import AttemptLimiter, FeedbackForm, Given, InboxFilter, Limits
from app.ledger.models import LedgerEntry
from app.merchants.models import Merchant
from app.tokens.crypto import find_card
from tests.helpers.api import give, stamp, visited_card
from tests.helpers.cards import book, issue_card
from tests.helpers.clock import Clock
from tests.helpers.shops import Shop


def card_id_of(app: FastAPI, token: str) -> bytes:
    return find_card(app.state.keyring, token)[1]


def test_demo_feedback_belongs_to_real_recent_visits(
    client: TestClient, shop: Shop, clock: Clock, app: FastAPI
) -> None:
    tokens = [visited_card(client, shop) for _ in range(6)]
    clock.advance(120)
    assert stamp(client, shop, tokens[0]).status_code == 201
    with app.state.engine.begin() as conn:
        made = seed_demo_feedback(
            conn, merchant_id=shop.merchant_id, rng=random.Random(1), now=clock(), share=1.0
        )
    assert made == 6
    with Session(app.state.engine) as session:
        rows = session.exec(select(Feedback)).all()
        for row in rows:
            entry = session.get(LedgerEntry, row.visit_entry_id)
            assert entry is not None and entry.holder == row.holder
        clicks = session.exec(select(ReviewClick)).all()
    # One per card, for its latest visit.
    assert len({r.holder for r in rows}) == 6
    assert clicks and all(c.merchant_id == shop.merchant_id for c in clicks)
    # The feedback of a seeded visit is what the form finds: no second one for the same visit.
    assert give(client, tokens[0], shop).status_code == 409


def test_the_card_export_holds_its_feedback_and_deleting_the_card_forgets_it(
    client: TestClient, shop: Shop, other_shop: Shop, app: FastAPI
) -> None:
    mine, theirs = visited_card(client, shop), visited_card(client, shop)
    assert stamp(client, other_shop, mine).status_code == 201
    give(client, mine, shop, rating=2, comment="zu laut")
    give(client, mine, other_shop, rating=5)
    give(client, theirs, shop, rating=4)
    with Session(app.state.engine) as session:
        exported = service.card_export(
            session=session, keyring=app.state.keyring, card_id=card_id_of(app, mine)
        )
        assert sorted((e["merchant"], e["rating"], e["comment"]) for e in exported) == [
            (other_shop.slug, 5, ""),
            (shop.slug, 2, "zu laut"),
        ]
        forgotten = service.forget_card(
            session=session, keyring=app.state.keyring, card_id=card_id_of(app, mine)
        )
        session.commit()
        assert forgotten == 2
        assert [f.rating for f in session.exec(select(Feedback)).all()] == [4]


def send(app: FastAPI, shop: Shop, card_id: bytes, form: FeedbackForm) -> Given:
    """The feedback form, posted by the card's holder about the shop; committed."""
    with Session(app.state.engine, expire_on_commit=False) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        given = service.send_form(
            session=session, keyring=app.state.keyring, merchant=merchant, card_id=card_id,
            form=form, now=app.state.clock(), limits=Limits(), attempts=AttemptLimiter(),
        )  # fmt: skip
        session.commit()
    return given


@pytest.mark.parametrize(
    ("form", "detail"),
    [
        (FeedbackForm(rating=""), "Please choose how your visit was, from 1 to 5."),
        (FeedbackForm(rating="6"), "Please choose how your visit was, from 1 to 5."),
        (FeedbackForm(rating="4", recommend="11"), "Please choose a number from 0 to 10, or none."),
    ],
)
def test_a_form_out_of_range_says_what_to_fix(
    app: FastAPI, shop: Shop, form: FeedbackForm, detail: str
) -> None:
    card = issue_card(app)
    book(app, shop, card)
    with pytest.raises(InvalidForm) as refused:
        send(app, shop, card.card_id, form)
    assert refused.value.detail == detail
    with Session(app.state.engine) as session:
        assert session.exec(select(Feedback)).all() == []


def test_the_form_gives_feedback_after_a_visit_and_changes_it(
    app: FastAPI, clock: Clock, shop: Shop
) -> None:
    card = issue_card(app)
    visit = book(app, shop, card).body["entry_id"]
    given = send(app, shop, card.card_id, FeedbackForm(rating="4", recommend="9", comment="gut"))
    assert (given.feedback.rating, given.feedback.recommend) == (4, 9)
    assert given.feedback.visit_entry_id == visit
    clock.advance(3600)
    edit = FeedbackForm(rating="2", comment="doch zu laut", feedback_id=given.feedback.id)
    send(app, shop, card.card_id, edit)
    with Session(app.state.engine) as session:
        (stored,) = session.exec(select(Feedback)).all()
    assert stored.id == given.feedback.id
    assert (stored.rating, stored.recommend, stored.comment, stored.edits) == (
        2, None, "doch zu laut", 1,
    )  # fmt: skip


def test_the_inbox_shows_new_feedback_until_the_merchant_saw_it(
    app: FastAPI, clock: Clock, shop: Shop, other_shop: Shop
) -> None:
    card = issue_card(app)
    book(app, shop, card)
    book(app, other_shop, card)
    mine = send(app, shop, card.card_id, FeedbackForm(rating="5")).feedback.id
    send(app, other_shop, card.card_id, FeedbackForm(rating="1"))
    clock.advance(60)

    def inbox() -> service.InboxPage:
        with Session(app.state.engine) as session:
            return service.inbox_page(
                session=session, merchant_id=shop.merchant_id, where=InboxFilter(), days=30,
                now=clock(), k=1,
            )  # fmt: skip

    first = inbox()
    assert [r.id for r in first.rows] == [mine]  # not the other shop's
    assert (first.unread, first.unread_total) == ({mine}, 1)
    assert first.figures["count"] == 1 and first.figures["average_rating"] == 5
    with Session(app.state.engine) as session:
        service.mark_seen(
            session=session, merchant_id=shop.merchant_id, feedback_ids=[mine], now=clock()
        )
        session.commit()
    second = inbox()
    assert [r.id for r in second.rows] == [mine]
    assert (second.unread, second.unread_total) == (set(), 0)
