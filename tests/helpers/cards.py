"""A card as the card and stamp routes make and book it, through the services, without HTTP."""

from typing import Any

from fastapi import FastAPI
from sqlmodel import Session

from app.db import write_engine
from app.ledger.service import Command, Outcome, run_command
from app.tokens import crypto
from app.tokens.cards import CardKey, parse_card
from app.tokens.service import create_card
from tests.helpers.shops import Shop, ledger_command


def issue_card(app: FastAPI) -> CardKey:
    """A new card, stored; its key as a route finds it from the token."""
    keyring = app.state.keyring
    with Session(app.state.engine) as session:
        made = create_card(session=session, keyring=keyring, now=app.state.clock())
        session.commit()
    return parse_card(keyring, made.token)


def make_cards(app: FastAPI, n: int) -> list[str]:
    """Cards made in one transaction, their tokens: quicker than n requests, and the same rows."""
    with Session(write_engine(app.state.engine)) as session:
        now = app.state.clock()
        cards = [create_card(session=session, keyring=app.state.keyring, now=now) for _ in range(n)]
        session.commit()
    return [c.token for c in cards]


def book(app: FastAPI, shop: Shop, card: CardKey, op: str = "stamp", **fields: Any) -> Outcome:
    """One ledger command of the shop's till for the card, committed (a refusal raises)."""
    command = ledger_command(app, shop, card.card_id, op, **fields)
    with write_engine(app.state.engine).begin() as conn:
        return run_command(conn, command)


def card_command(app: FastAPI, shop: Shop, token: str, op: str, **fields: Any) -> Command:
    """The ledger command a request of the shop's till about this card would queue."""
    card_id = crypto.verify_token(app.state.keyring, token)
    return ledger_command(app, shop, card_id, op, **fields)
