"""The ledger writer in a child process, as `treu serve` runs it: the same answers as in one
process, refusals intact across the pipe, and a child that dies is replaced without a lost or
doubled stamp. (tests/test_serve.py runs it under load and kills the whole server.)"""

import os
import signal
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.conftest import Clock, Shop, make_shop, new_card, redeem, stamp


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
