"""Faults of the machine answer as faults: a lost ledger writer, a full disk, a database that is
gone, an exhausted pool each answer 503 problem+json with Retry-After (a page for a browser),
the health check says so, a stamp that met one is written once when the till sends it again,
and the log gets one line per kind of fault now and then, not a traceback per request. A bug
is still a 500.

Every fault is real: the writer's child process is killed, a tmpfs is filled (or SQLite's page
limit reached), the TCP path to PostgreSQL is cut, the pool's connections are all taken.
(tests/test_serve.py does the same to a real `treu serve` under load.)
"""

import errno
import logging
import os
import pickle
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session, select

from app.config import Settings
from app.db import SessionDep, make_engine
from app.errors import FaultLog, Unavailable, fault_of, faults
from app.ledger.models import LedgerEntry
from app.main import create_app
from tests.helpers.api import new_card, stamp
from tests.helpers.browser import LiveServer, free_port
from tests.helpers.clock import Clock
from tests.helpers.database import PG_URL
from tests.helpers.proxy import TcpProxy, postgres_proxy
from tests.helpers.shops import Shop, make_shop

HTML = {"Accept": "text/html", "Accept-Language": "de"}


@pytest.fixture(autouse=True)
def fresh_fault_log() -> None:
    """Each test starts as a new server does: the first fault of each kind is logged."""
    faults.clear()


def fault_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "treu.faults"]


def assert_unavailable(response: httpx.Response) -> None:
    """A fault as the API answers it: 503 problem+json, Retry-After, nothing about the cause."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    problem = response.json()
    assert problem["code"] == "unavailable" and problem["status"] == 503
    assert problem["title"] == "Temporarily unavailable"


def assert_friendly_page(response: httpx.Response) -> None:
    """A fault as a person in a browser sees it: a page in their language, Retry-After."""
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["retry-after"] == "5"
    assert "Vorübergehend nicht erreichbar" in response.text


def assert_logged_once_per_kind(caplog: pytest.LogCaptureFixture, *tokens: str) -> set[str]:
    """The fault lines: one per kind, no traceback, no card token; returns the kinds."""
    lines = fault_lines(caplog)
    kinds = [r.getMessage().split()[1] for r in lines]
    assert lines and len(kinds) == len(set(kinds)), [r.getMessage() for r in lines]
    for record in caplog.records:
        error = record.exc_info[1] if record.exc_info else None
        assert error is None or fault_of(error) is None, record.getMessage()  # no fault traceback
        assert not any(token in record.getMessage() for token in tokens)
    return set(kinds)


def ledger_keys(engine: Any) -> list[str]:
    """The Idempotency-Key of every ledger entry, sorted (a key twice would show twice)."""
    with Session(engine) as session:
        return sorted(k or "" for k in session.exec(select(LedgerEntry.idempotency_key)))


# --- one place tells faults from bugs ------------------------------------------------------------


def test_faults_are_told_from_bugs_in_one_place(settings: Settings, tmp_path: Path) -> None:
    engine = make_engine(settings.resolved_database_url)
    try:
        # A bug: SQL that names no table. The database answered; the code was wrong.
        with pytest.raises(DBAPIError) as bug, engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
        assert fault_of(bug.value) is None
        with pytest.raises(DBAPIError) as constraint, engine.begin() as conn:
            conn.execute(text("INSERT INTO merchant (id) VALUES (NULL)"))
        assert fault_of(constraint.value) is None
    finally:
        engine.dispose()

    # A pool whose one connection is taken: pool_timeout passes.
    small = create_engine(settings.resolved_database_url, pool_size=1, max_overflow=0,
                          pool_timeout=0.05)  # fmt: skip
    with small.connect(), pytest.raises(PoolTimeout) as timeout:
        small.connect()
    small.dispose()
    assert fault_of(timeout.value) == "pool-timeout"

    # A PostgreSQL server nobody answers for, and an SQLite file that cannot be opened.
    for url in (f"postgresql+psycopg://treu@127.0.0.1:{free_port()}/treu",
                f"sqlite:///{tmp_path}/no/such/folder/treu.db"):  # fmt: skip
        gone = make_engine(url)
        with pytest.raises(DBAPIError) as unreachable:
            gone.connect()
        gone.dispose()
        assert fault_of(unreachable.value) == "database-unreachable", unreachable.value

    assert fault_of(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) == "disk-full"
    assert fault_of(OSError(errno.ENOENT, os.strerror(errno.ENOENT))) is None
    assert fault_of(ValueError("a bug")) is None
    try:
        raise RuntimeError("wrapped") from timeout.value
    except RuntimeError as wrapped:
        assert fault_of(wrapped) == "pool-timeout"
    # The ledger writer's child sends its 503s across a pipe.
    crossed = pickle.loads(pickle.dumps(Unavailable("disk-full")))
    assert (crossed.status, crossed.fault, crossed.headers) == (503, "disk-full",
                                                                {"Retry-After": "5"})  # fmt: skip


def test_a_fault_is_logged_once_per_kind_and_interval_with_a_count() -> None:
    now = [100.0]
    log = FaultLog(every=10, clock=lambda: now[0])
    refused = OSError(errno.ECONNREFUSED, "Connection refused")
    assert log.report("database-unreachable", refused)
    assert not any(log.report("database-unreachable", refused) for _ in range(57))
    assert log.report("disk-full", "3 MiB free")  # another kind has its own line
    now[0] += 10
    assert log.report("database-unreachable", refused)
    assert not log.report("database-unreachable", refused)


def test_the_log_line_names_the_fault_and_no_address(caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(f"postgresql+psycopg://treu@127.0.0.1:{free_port()}/treu")
    with pytest.raises(DBAPIError) as refused:
        engine.connect()
    engine.dispose()
    FaultLog().report("database-unreachable", refused.value)
    (line,) = fault_lines(caplog)
    message = line.getMessage()
    assert message.startswith("fault database-unreachable (OperationalError: ")
    assert "Connection refused" in message and message.endswith("): answering 503")
    assert "127.0.0.1" not in message and "SELECT" not in message
    assert line.exc_info is None and "\n" not in message


def test_a_bug_is_still_a_500_with_its_traceback(
    app: FastAPI, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(session: SessionDep) -> None:
        session.execute(text("SELECT * FROM no_such_table"))

    app.add_api_route("/api/v1/broken", broken)
    response = client.get("/api/v1/broken")
    assert response.status_code == 500
    assert response.json()["title"] == "Internal error"
    assert "retry-after" not in response.headers
    (record,) = [r for r in caplog.records if r.getMessage().startswith("unexpected error")]
    assert record.exc_info is not None
    assert not fault_lines(caplog)


# --- the ledger writer's child dies --------------------------------------------------------------


@pytest.fixture
def served(settings: Settings, clock: Clock) -> Iterator[tuple[FastAPI, str]]:
    """The app as `treu serve` runs it (the ledger writer in a child process), over HTTP."""
    application = create_app(settings, clock=clock, writer_process=True)
    server = LiveServer(application, free_port())
    server.start()
    yield application, server.url
    server.stop()
    application.state.writer.stop()
    application.state.engine.dispose()


def send(base: str, shop: Shop, token: str, key: str) -> httpx.Response:
    headers = {**shop.auth, "Idempotency-Key": key}
    return httpx.post(f"{base}/api/v1/stamps", json={"token": token}, headers=headers, timeout=30)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_a_killed_ledger_writer_answers_503_and_nothing_is_lost(
    served: tuple[FastAPI, str], caplog: pytest.LogCaptureFixture
) -> None:
    app, base = served
    shop = make_shop(app, "Phoenix Café", cooldown_seconds=0)
    token = httpx.post(f"{base}/api/v1/cards").json()["token"]
    assert send(base, shop, token, "before").status_code == 201
    writer = app.state.writer
    child = writer._process
    # Three stamps wait for a child that is stopped, and then killed under them.
    os.kill(child.pid, signal.SIGSTOP)
    keys = [f"waiting-{i}" for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        waiting = [pool.submit(send, base, shop, token, key) for key in keys]
        wait_for(lambda: len(writer._waiting) == 3, "the stamps did not reach the writer")
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=10)
        answers = [future.result() for future in waiting]
    for answer in answers:
        assert_unavailable(answer)

    # The health check finds no writer: 503 at once (it starts a new one meanwhile).
    wait_for(lambda: not writer.running, "the server did not notice the child's death")
    assert_unavailable(httpx.get(f"{base}/healthz"))
    wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, "no new writer", 60)
    assert writer._process.pid != child.pid

    # The till sends them again with their keys: each is written exactly once.
    for key in keys:
        assert send(base, shop, token, key).status_code == 201
    assert ledger_keys(app.state.engine) == sorted(["before", *keys])
    assert httpx.get(f"{base}/api/v1/cards/{token}").json()["cards"][0]["stamps"] == 4
    assert assert_logged_once_per_kind(caplog, token) == {"ledger-writer"}


# --- the disk is full ----------------------------------------------------------------------------

SMALL_DISK_BYTES = 48 * 2**20  # above the health check's 32 MiB floor, until it is filled


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 48 MiB (mounting one needs root with CAP_SYS_ADMIN)."""
    if PG_URL:
        pytest.skip("the disk that fills is PostgreSQL's own, not this machine's to fill")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_BYTES}", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses another byte; the refusal is a real ENOSPC."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (2**20, 2**16, 2**12, 1):
            with pytest.raises(OSError) as full:
                for _ in range(SMALL_DISK_BYTES // chunk + 1):
                    os.write(fd, b"\0" * chunk)
            assert full.value.errno == errno.ENOSPC
            assert fault_of(full.value) == "disk-full"
    finally:
        os.close(fd)
    return filler


def until_unavailable(send: Callable[[], httpx.Response], success: int) -> httpx.Response:
    """Send until the answer is 503 (every answer before it a success, none a 500)."""
    for _ in range(5000):
        response = send()
        if response.status_code != success:
            return response
    raise AssertionError("never refused")


def test_a_full_disk_answers_503_and_the_health_check_says_so(
    small_disk: Path,
    settings: Settings,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = small_disk / "treu.db"
    shutil.copy(make_url(settings.resolved_database_url).database or "", database)
    on_disk = settings.model_copy(update={"database_url": f"sqlite:///{database}"})
    app = create_app(on_disk, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        shop = make_shop(app, "Café Voll", cooldown_seconds=0)
        tokens = [new_card(client) for _ in range(3)]
        assert client.get("/healthz").status_code == 200

        filler = fill(small_disk)
        assert_unavailable(client.get("/healthz"))  # less than 32 MiB free
        # A write still fits while the WAL has room in the space it already holds (what it wrote
        # is safe); the first one that needs a page more is refused.
        answered: dict[str, int] = {}

        def send_stamp() -> httpx.Response:
            key = f"full-{len(answered)}"
            response: httpx.Response = stamp(client, shop, tokens[len(answered) % 3], key=key)
            answered[key] = response.status_code
            return response

        assert_unavailable(until_unavailable(send_stamp, 201))
        assert_unavailable(until_unavailable(lambda: client.post("/api/v1/cards"), 201))
        page = {"headers": HTML, "follow_redirects": False}
        assert_friendly_page(until_unavailable(lambda: client.post("/cards/new", **page), 303))
        assert_unavailable(client.get("/healthz"))

        # Room again: the till sends the refused stamp with its key, and it is written once.
        filler.unlink()
        for key, status in answered.items():
            if status == 503:
                assert stamp(client, shop, tokens[0], key=key).status_code == 201
        assert client.get("/healthz").status_code == 200
        assert ledger_keys(app.state.engine) == sorted(answered)
        assert new_card(client)
    app.state.engine.dispose()
    kinds = assert_logged_once_per_kind(caplog, *tokens)
    assert "disk-full" in kinds and kinds <= {"disk-full", "disk-error"}


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's page limit: PostgreSQL has none to set")
def test_a_database_at_its_page_limit_answers_503(
    app: FastAPI, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Without root: SQLite's max_page_count makes the same SQLITE_FULL ("database or disk is
    full") a full disk does, and the health check knows it from the write that failed."""
    counter = make_engine(settings.resolved_database_url)
    with counter.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    counter.dispose()

    @event.listens_for(app.state.engine, "connect")
    def limit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count={pages + 30}")

    with TestClient(app, raise_server_exceptions=False) as client:
        shop = make_shop(app, "Café Voll", cooldown_seconds=0)
        tokens = [new_card(client) for _ in range(3)]
        for i in range(3000):
            response = stamp(client, shop, tokens[i % 3])
            if response.status_code != 201:
                break
        assert i > 0, "not one stamp fitted"
        assert_unavailable(response)
        assert_unavailable(client.get("/healthz"))
    assert assert_logged_once_per_kind(caplog, *tokens) == {"disk-full"}


# --- the database is out of reach ----------------------------------------------------------------


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    running = postgres_proxy()
    yield running
    running.stop()


def test_a_database_out_of_reach_answers_503_until_it_is_back(
    proxy: TcpProxy, settings: Settings, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    via_proxy = make_url(settings.resolved_database_url).set(host="127.0.0.1", port=proxy.port)
    url = via_proxy.render_as_string(hide_password=False)
    app = create_app(settings.model_copy(update={"database_url": url}), clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        shop = make_shop(app, "Café Fern", cooldown_seconds=0)
        token = new_card(client)
        assert stamp(client, shop, token, key="before").status_code == 201

        proxy.stop()
        keys = [f"outage-{i}" for i in range(20)]
        for key in keys:
            assert_unavailable(stamp(client, shop, token, key=key))
        assert_unavailable(client.post("/api/v1/cards"))
        assert_unavailable(client.get(f"/api/v1/cards/{token}"))
        assert_friendly_page(client.get(f"/c/{token}", headers=HTML))
        assert_unavailable(client.get("/healthz"))

        proxy.start()
        for key in keys:
            assert stamp(client, shop, token, key=key).status_code == 201
        assert client.get("/healthz").status_code == 200
        assert client.get(f"/api/v1/cards/{token}").json()["cards"][0]["stamps"] == 21
    assert ledger_keys(app.state.engine) == sorted(["before", *keys])
    app.state.engine.dispose()
    assert assert_logged_once_per_kind(caplog, token) == {"database-unreachable"}


# --- every connection of the pool is taken -------------------------------------------------------


def test_an_exhausted_pool_answers_503(
    app: FastAPI, client: TestClient, shop: Shop, card: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The app's engine, with a pool of one connection that waits half a second for it (not 30
    # seconds): the same pool, the same error, sooner.
    url = app.state.engine.url.render_as_string(hide_password=False)
    app.state.engine = create_engine(url, pool_size=1, max_overflow=0, pool_timeout=0.5,
                                     hide_parameters=True)  # fmt: skip
    try:
        with app.state.engine.connect():  # the pool's only connection, taken
            assert_unavailable(client.get(f"/api/v1/till/cards/{card}", headers=shop.auth))
            assert_unavailable(client.post("/api/v1/cards"))
            assert_friendly_page(client.post("/cards/new", headers=HTML, follow_redirects=False))
        assert client.get(f"/api/v1/till/cards/{card}", headers=shop.auth).status_code == 200
    finally:
        app.state.engine.dispose()
    assert assert_logged_once_per_kind(caplog, card) == {"pool-timeout"}


def test_unavailable_is_documented_for_the_health_check(client: TestClient) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/healthz"]["get"]["responses"]
    assert "503" in responses
