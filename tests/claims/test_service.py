"""Claim codes through the service, without HTTP: a code turns into the claim command for a
card, and the ledger writer books it once (SQLite and PostgreSQL)."""

import asyncio
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from sqlmodel import Session

from app.claims import service as claims
from app.claims.exceptions import ClaimGone
from app.errors import AppError
from app.ledger import service as ledger
from app.ledger.service import Outcome
from app.ledger.writer import LedgerWriter
from app.merchants import service as merchants
from app.merchants.models import Merchant
from app.tokens.cards import CardKey
from app.tokens.crypto import holder_for
from tests.helpers.cards import issue_card
from tests.helpers.clock import Clock
from tests.helpers.shops import Shop


@pytest.fixture
def writer(app: FastAPI) -> Iterator[LedgerWriter]:
    running = LedgerWriter(app.state.engine, retention_hours=72)
    running.start()
    yield running
    running.stop()


def new_code(app: FastAPI, shop: Shop, count: int) -> str:
    """A code the shop's till made, worth `count` stamps."""
    with Session(app.state.engine) as session:
        made = claims.create_claim(
            session=session, keyring=app.state.keyring, merchant_id=shop.merchant_id,
            device_id=shop.device_id, count=count, program_id=None, idempotency_key=None,
            now=app.state.clock(), ttl_seconds=300,
        )  # fmt: skip
        session.commit()
    return made.code


def prepare(app: FastAPI, code: str, card: CardKey) -> claims.PendingClaim:
    with Session(app.state.engine, expire_on_commit=False) as session:
        return claims.prepare_claim(
            session=session, keyring=app.state.keyring, code=code, card=card, now=app.state.clock()
        )


def claim(app: FastAPI, writer: LedgerWriter, code: str, card: CardKey) -> Outcome:
    pending = prepare(app, code, card)
    return asyncio.run(claims.claim(writer=writer, pending=pending))


def test_a_code_becomes_the_claim_command_for_the_card(app: FastAPI, shop: Shop) -> None:
    card = issue_card(app)
    pending = prepare(app, new_code(app, shop, count=3).lower(), card)  # as typed
    command = pending.command
    assert (command.op, command.merchant_id, command.device_id, command.count) == (
        "claim", shop.merchant_id, shop.device_id, 3,
    )  # fmt: skip
    assert command.holder == holder_for(app.state.keyring, card.card_id, shop.merchant_id)
    assert command.card_ref == card.ref
    assert pending.merchant.slug == shop.slug


def test_an_unknown_code_is_not_found(app: FastAPI, shop: Shop) -> None:
    new_code(app, shop, count=1)
    with pytest.raises(AppError) as refused:
        prepare(app, "A" * claims.CODE_CHARS, issue_card(app))
    assert (refused.value.status, refused.value.code) == (404, "unknown-claim")


def test_a_code_books_its_stamps_once(app: FastAPI, shop: Shop, writer: LedgerWriter) -> None:
    code, card = new_code(app, shop, count=3), issue_card(app)
    first = claim(app, writer, code, card)
    assert (first.status, first.body["kind"], first.body["stamps"]) == (201, "stamp", 3)
    # The same card retrying gets the same answer; nothing is booked twice.
    again = claim(app, writer, code, card)
    assert again.replayed and again.body["entry_id"] == first.body["entry_id"]
    assert again.body["stamps"] == 3
    with pytest.raises(AppError) as refused:
        claim(app, writer, code, issue_card(app))
    assert (refused.value.status, refused.value.code) == (410, "claim-used")


def test_a_code_dies_with_the_till_that_made_it(
    app: FastAPI, clock: Clock, shop: Shop, writer: LedgerWriter
) -> None:
    code, card = new_code(app, shop, count=2), issue_card(app)
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        merchants.revoke_device(
            session=session, merchant=merchant, device_id=shop.device_id, now=clock()
        )
        session.commit()
    with pytest.raises(ClaimGone) as refused:
        claim(app, writer, code, card)
    assert (refused.value.status, refused.value.code) == (410, "claim-revoked")
    holder = holder_for(app.state.keyring, card.card_id, shop.merchant_id)
    with Session(app.state.engine) as session:
        assert (
            ledger.balances_at(session=session, merchant_id=shop.merchant_id, holder=holder) == {}
        )
