"""The ledger writer in a child process, as `treu serve` runs it: the same answers as in one
process, refusals intact across the pipe, and a child that dies is replaced without a lost or
doubled stamp. (tests/test_serve.py runs it under load and kills the whole server.)"""

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from app.config import Settings
from app.ledger import writer as writer_module
from app.ledger.models import Balance, LedgerEntry
from app.ledger.service import Command, Outcome
from app.ledger.writer import MAX_BATCH, PING, SPLIT_FROM, WriterProcess, batch_size
from app.main import create_app
from app.tokens import crypto
from tests.helpers.api import new_card, redeem, stamp
from tests.helpers.clock import Clock
from tests.helpers.shops import Shop, ledger_command, make_shop


@pytest.fixture
def served(settings: Settings, clock: Clock) -> Iterator[tuple[FastAPI, TestClient]]:
    application = create_app(settings, clock=clock, writer_process=True)
    with TestClient(application, raise_server_exceptions=False) as client:
        yield application, client
    application.state.writer.stop()
    application.state.engine.dispose()


def test_answers_and_refusals_cross_the_pipe(
    served: tuple[FastAPI, TestClient], clock: Clock
) -> None:
    app, client = served
    shop: Shop = make_shop(app, "Pipe Café", stamps_required=3, cooldown_seconds=60)
    token = new_card(client)
    first = stamp(client, shop, token, key="first", count=3)
    assert first.status_code == 201
    assert first.json()["rewards_available"] == 1
    again = stamp(client, shop, token, key="first", count=3)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    cooled = stamp(client, shop, token)
    assert cooled.status_code == 429
    assert cooled.headers["content-type"] == "application/problem+json"
    assert int(cooled.headers["Retry-After"]) > 0
    assert cooled.json()["code"] == "cooldown"
    assert redeem(client, shop, token).json()["stamps"] == 0
    assert redeem(client, shop, token).status_code == 409
    assert client.get("/healthz").json() == {"status": "ok"}


def test_a_dead_writer_is_replaced(served: tuple[FastAPI, TestClient], clock: Clock) -> None:
    app, client = served
    shop: Shop = make_shop(app, "Phoenix Café", cooldown_seconds=0)
    token = new_card(client)
    assert stamp(client, shop, token).status_code == 201
    child = app.state.writer._process
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=10)
    # The first request may meet the dead pipe (503 for the health check); then a new child runs.
    deadline = time.monotonic() + 30
    while client.get("/healthz").status_code != 200:
        assert time.monotonic() < deadline, "no new ledger writer"
        time.sleep(0.1)
    assert app.state.writer._process.pid != child.pid
    after = stamp(client, shop, token)
    assert after.status_code == 201
    assert after.json()["stamps"] == 2


def _rush_command(app: FastAPI, shop: Shop, tokens: list[str], i: int) -> Command:
    _token, card_id = crypto.find_card(app.state.keyring, tokens[i % len(tokens)])
    return ledger_command(app, shop, card_id, idempotency_key=f"rush-{i}")


def test_the_writer_takes_all_of_a_few_and_half_of_many() -> None:
    assert [batch_size(n) for n in (1, 2, SPLIT_FROM)] == [1, 2, SPLIT_FROM]
    assert batch_size(SPLIT_FROM + 1) == SPLIT_FROM
    assert batch_size(2 * SPLIT_FROM) == SPLIT_FROM
    assert batch_size(41) == 21
    assert batch_size(10 * MAX_BATCH) == MAX_BATCH


def test_a_rush_is_answered_in_halves(
    served: tuple[FastAPI, TestClient], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen stamps sent together: the child commits and answers the first eight, then the
    other eight, so the server can answer the first ones while the rest are written."""
    app, client = served
    shop: Shop = make_shop(app, "Queue Café", cooldown_seconds=0)
    tokens = [new_card(client) for _ in range(16)]
    commands = [_rush_command(app, shop, tokens, i) for i in range(16)]
    answered: list[int] = []
    settle = writer_module._settle

    def counted(answers: Any) -> None:
        answers = list(answers)
        answered.append(len(answers))
        settle(answers)

    monkeypatch.setattr(writer_module, "_settle", counted)

    async def rush() -> list[Outcome]:
        writer = WriterProcess(settings.resolved_database_url)
        writer.start()
        try:
            await writer.ping()  # the child is up: the sixteen go over in one message
            answered.clear()
            return await asyncio.wait_for(asyncio.gather(*map(writer.submit, commands)), 60)
        finally:
            writer.stop()

    outcomes = asyncio.run(rush())
    assert [o.status for o in outcomes] == [201] * 16
    assert answered == [8, 8]


def test_what_was_sent_before_the_server_stops_is_written(
    served: tuple[FastAPI, TestClient], settings: Settings
) -> None:
    """A shutdown while a rush waits in the child: every command it was sent still commits
    (the answers have nowhere to go; a retry of any of them is answered from its record)."""
    app, client = served
    shop: Shop = make_shop(app, "Closing Café", cooldown_seconds=0)
    tokens = [new_card(client) for _ in range(20)]
    commands = [_rush_command(app, shop, tokens, i) for i in range(20)]

    async def rush_then_stop() -> None:
        writer = WriterProcess(settings.resolved_database_url)
        writer.start()
        await writer.ping()
        pending = [asyncio.ensure_future(writer.submit(c)) for c in commands]
        await asyncio.sleep(0)  # the twenty go over in one message
        await asyncio.sleep(0)
        writer.stop()
        for future in pending:
            future.cancel()

    asyncio.run(rush_then_stop())
    with Session(app.state.engine) as session:
        assert session.exec(select(func.count()).select_from(LedgerEntry)).one() == 20


def test_more_commands_at_once_than_the_child_takes_are_all_answered(
    served: tuple[FastAPI, TestClient], settings: Settings
) -> None:
    """A rush larger than a batch: the server holds back what does not fit in the child and
    sends it with the child's answers; every stamp commits once, every request is answered."""
    app, client = served
    shop: Shop = make_shop(app, "Rush Café", cooldown_seconds=0, max_stamps_per_scan=1)
    tokens = [new_card(client) for _ in range(20)]
    stamps = 2 * MAX_BATCH + 50
    commands = [_rush_command(app, shop, tokens, i) for i in range(stamps)]
    commands += [PING] * MAX_BATCH

    async def rush() -> list[Outcome]:
        writer = WriterProcess(settings.resolved_database_url)
        writer.start()
        try:
            answers = asyncio.gather(*(writer.submit(c) for c in commands))
            return await asyncio.wait_for(answers, timeout=60)  # a request left waiting fails
        finally:
            writer.stop()

    outcomes = asyncio.run(rush())
    assert [o.status for o in outcomes] == [201] * stamps + [200] * MAX_BATCH
    assert len({o.body["entry_id"] for o in outcomes[:stamps]}) == stamps
    with Session(app.state.engine) as session:
        assert session.exec(select(func.count()).select_from(LedgerEntry)).one() == stamps
        assert session.exec(select(func.sum(Balance.stamps))).one() == stamps
