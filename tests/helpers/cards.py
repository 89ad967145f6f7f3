"""A card as the card and stamp routes make and book it, through the services, without HTTP."""

from typing import Any

from fastapi import FastAPI
from sqlmodel import Session

from app.db import write_engine
from app.ledger.service import Outcome, run_command
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


def book(app: FastAPI, shop: Shop, card: CardKey, op: str = "stamp", **fields: Any) -> Outcome:
    """One ledger command of the shop's till for the card, committed (a refusal raises)."""
    command = ledger_command(app, shop, card.card_id, op, **fields)
    with write_engine(app.state.engine).begin() as conn:
        return run_command(conn, command)
