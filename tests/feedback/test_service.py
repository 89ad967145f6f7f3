"""Service parts used outside the feedback pages: the demo seed, the card's export and delete."""

import random

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.feedback import service
from app.feedback.demo import seed_demo_feedback
from app.feedback.models import Feedback, ReviewClick
from app.ledger.models import LedgerEntry
from app.tokens.crypto import find_card
from tests.conftest import Clock, Shop, stamp
from tests.feedback.conftest import give, visited_card


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
