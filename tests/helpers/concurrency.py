"""Many writes at once, as production meets them: requests sent together through one app or
through two instances of it on one database (each from its own thread and event loop, as
separate server processes), and ledger commands run straight on connections of their own, with
no ledger writer in between to serialise them."""

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.exc import IntegrityError

from app.db import write_engine
from app.errors import AppError
from app.ledger.service import Command, Outcome, run_command
from tests.helpers.shops import Shop

# Every write route the concurrent tests send to (a void's entry id does not matter here).
WRITE_PATHS = ("/api/v1/stamps", "/api/v1/redemptions", f"/api/v1/entries/{'0' * 32}/void")


@dataclass(frozen=True)
class Call:
    path: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: httpx.Headers = field(repr=False)

    @property
    def replayed(self) -> bool:
        return bool(self.headers.get("idempotent-replayed") == "true")


def fire(apps: list[FastAPI], calls: list[Call]) -> list[Answer]:
    """Send all calls at once; call i goes to apps[i % len(apps)].

    Each app gets its own thread and event loop, as separate server processes would; the
    threads start together, and each sends its share of the calls concurrently.
    """
    answers: list[Answer | None] = [None] * len(calls)
    start = threading.Barrier(len(apps))

    async def send_share(index: int) -> None:
        transport = httpx.ASGITransport(app=apps[index], raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://treu.test") as http:
            mine = range(index, len(calls), len(apps))
            start.wait()
            responses = await asyncio.gather(
                *(http.post(calls[i].path, headers=calls[i].headers, json=calls[i].json)
                  for i in mine)
            )  # fmt: skip
        for i, response in zip(mine, responses, strict=True):
            answers[i] = Answer(response.status_code, response.json(), response.headers)

    with ThreadPoolExecutor(len(apps)) as pool:
        for done in [pool.submit(asyncio.run, send_share(i)) for i in range(len(apps))]:
            done.result()
    assert all(a is not None for a in answers)
    return answers  # type: ignore[return-value]


def stamp_call(shop: Shop, token: str, count: int = 1, key: str | None = None) -> Call:
    headers = {**shop.auth, "Idempotency-Key": key or uuid.uuid4().hex}
    return Call("/api/v1/stamps", headers, {"token": token, "count": count})


def warm_up(app: FastAPI) -> None:
    """Build the write routes before the concurrent part. Two apps in one process share the
    module-level routers, and FastAPI builds a route on its first request, which is not
    thread-safe across apps (separate server processes do not share anything)."""
    warm = TestClient(app)
    for path in WRITE_PATHS:
        assert warm.post(path).status_code == 401


@contextmanager
def slow_writes(apps: list[FastAPI], statements: tuple[str, ...], seconds: float) -> Iterator[None]:
    """Hold each write transaction open a moment after one of these statements (their first
    words, upper case), so that two instances really meet on the same rows: one waits for the
    other's row lock and carries on with what the other committed. Without this the windows are
    microseconds wide and the races would hardly ever happen."""

    def pause(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(statements):
            time.sleep(seconds)

    engines = [application.state.engine for application in apps]
    for engine in engines:
        event.listen(engine, "after_cursor_execute", pause)
    yield
    for engine in engines:
        event.remove(engine, "after_cursor_execute", pause)


def run_in_threads(engine: Engine, commands: list[Command]) -> list[Outcome | Exception]:
    """Each command in its own thread, connection and transaction, all at once: the
    conditional statements alone must hold. A refusal or a unique key met is returned."""
    writer = write_engine(engine)
    start = threading.Barrier(len(commands))

    def one(queued: Command) -> Outcome | Exception:
        start.wait()
        try:
            with writer.begin() as conn:
                return run_command(conn, queued)
        except (AppError, IntegrityError) as exc:
            return exc

    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(one, commands))


def assert_no_server_error(answers: list[Answer]) -> None:
    errors = [a for a in answers if a.status >= 500]
    assert not errors, errors[:3]


def assert_no_batch_replayed(caplog: pytest.LogCaptureFixture) -> None:
    """A deadlock would still end well (the writer replays the batch one command at a time),
    but only after the database's deadlock timeout: a second or more at every till waiting."""
    replayed = [r for r in caplog.records if "replaying one by one" in r.getMessage()]
    assert not replayed, "a batch failed (a deadlock?) and was replayed"
