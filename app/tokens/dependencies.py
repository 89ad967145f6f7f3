"""The server's keys; the card named in a path (a verified token and its card row); its view."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from app.db import SessionDep, engine_of, in_write_session, loop_engine_of
from app.dependencies import now_of, settings_of
from app.tokens import service
from app.tokens.cards import CardKey, load_card, parse_card
from app.tokens.crypto import Keyring
from app.tokens.models import Card
from app.tokens.schemas import CardView


def keyring_of(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


async def _keyring(request: Request) -> Keyring:
    # A coroutine, so FastAPI does not hop to a worker thread for it (see app.dependencies).
    return keyring_of(request)


KeyringDep = Annotated[Keyring, Depends(_keyring)]


@dataclass(frozen=True)
class ValidCardInfo:
    key: CardKey
    card: Card


def valid_card(token: str, keyring: KeyringDep, session: SessionDep) -> ValidCardInfo:
    key = parse_card(keyring, token)
    return ValidCardInfo(key, load_card(session, key))


ValidCard = Annotated[ValidCardInfo, Depends(valid_card)]


def _read(request: Request, key: CardKey, engine: Engine) -> service.CardRead:
    with engine.connect() as conn:
        return service.read_card(
            db=conn,
            keyring=keyring_of(request),
            key=key,
            now=now_of(request),
            base_url=settings_of(request).base_url,
        )


def _remember(request: Request, key: CardKey, sealed_wallet: bytes) -> None:
    """The first look of the day, or at a new shop's stamps: the card row is written, in a
    transaction of its own (never together with anything a merchant sees)."""
    in_write_session(
        engine_of(request),
        service.remember_visits,
        key=key,
        sealed_wallet=sealed_wallet,
        today=now_of(request).date(),
    )


def card_view(request: Request, key: CardKey) -> CardView:
    """The card's view, for a caller on a worker thread (the card page; the API on PostgreSQL)."""
    read = _read(request, key, engine_of(request))
    if read.sealed_wallet is not None:
        _remember(request, key, read.sealed_wallet)
    return read.view


async def card_view_on_loop(request: Request, key: CardKey) -> CardView:
    """The card's view for the API. The open card page asks for it every few seconds: on SQLite
    it is three indexed reads that never wait for a writer (WAL), done on the event loop's own
    connection, sooner than a worker thread would get the GIL back after each (6x the
    requests/s, bench/). PostgreSQL is a network away: a worker thread reads there."""
    reads = loop_engine_of(request)
    if reads is None:
        return await run_in_threadpool(card_view, request, key)
    read = _read(request, key, reads)
    if read.sealed_wallet is not None:
        await run_in_threadpool(_remember, request, key, read.sealed_wallet)
    return read.view
