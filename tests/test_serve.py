"""A real `treu serve` process: killed under load it loses no answered stamp and doubles none,
and it logs nothing about who asked (no IP address, no user agent, no access log). Its ledger
writer killed, or PostgreSQL gone for three seconds, it answers 503 (never 500) and logs a line,
not a traceback per request; a client that sends its request slowly, or nothing, is cut off.

Slow (real processes), but part of every `make test` run.
"""

import contextlib
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.cli import KEEP_ALIVE_SECONDS, MAX_HEAD_BYTES, REQUEST_SECONDS
from app.db import make_engine
from tests.helpers.browser import free_port
from tests.helpers.proxy import TcpProxy, postgres_proxy

pytestmark = pytest.mark.slow

TREU = str(Path(sys.executable).with_name("treu"))
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) TreuProbe/7.3"
FORWARDED_FOR = "203.0.113.77"
# The server listens on 127.0.0.1 and every client comes from there (or says 203.0.113.77).
IPV4_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


@dataclass
class Instance:
    """One data dir and database, with the `treu` command and servers started on them."""

    env: dict[str, str]
    log: Path
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def treu(self, *args: str) -> str:
        done = subprocess.run(
            [TREU, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def serve(self) -> str:
        """Start `treu serve` on a free port; return its base URL once it answers."""
        port = free_port()
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                [TREU, "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.servers.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    return base
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"treu serve did not come up:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        for proc in self.servers:
            if proc.poll() is None:
                proc.send_signal(sig)
                proc.wait(timeout=20)


@pytest.fixture
def instance(database_url: str, tmp_path: Path) -> Iterator[Instance]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREU_")}
    env |= {"TREU_DATA_DIR": str(tmp_path / "data"), "TREU_DATABASE_URL": database_url}
    running = Instance(env, tmp_path / "server.log")
    running.treu("init")
    yield running
    running.stop(signal.SIGKILL)


def shop(instance: Instance) -> tuple[str, str]:
    """A merchant without cooldown (a card may be stamped again at once) and its device."""
    created = json.loads(instance.treu(
        "merchant", "create", "--name", "Café Sonne", "--stamps-required", "100",
        "--reward", "1 free coffee", "--cooldown-seconds", "0", "--json",
    ))  # fmt: skip
    device = json.loads(instance.treu("device", "create", "--merchant", created["slug"], "--json"))
    return created["slug"], device["secret"]


@dataclass
class Load:
    """Stamps sent from several threads, each with its own Idempotency-Key."""

    base: str
    secret: str
    tokens: list[str]
    sent: dict[str, str] = field(default_factory=dict)  # idempotency key -> token
    answered: dict[str, str] = field(default_factory=dict)  # idempotency key -> entry id
    refused: list[str] = field(default_factory=list)  # answers other than 201
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def worker(self, n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self.stop.is_set():
                token = rng.choice(self.tokens)
                key = uuid.uuid4().hex
                with self.lock:
                    self.sent[key] = token
                try:
                    response = send_stamp(client, self.secret, token, key)
                except httpx.TransportError:
                    return  # the server is gone
                with self.lock:
                    if response.status_code != 201:
                        self.refused.append(f"{response.status_code} {response.text}")
                        return
                    self.answered[key] = response.json()["entry_id"]


def send_stamp(client: httpx.Client, secret: str, token: str, key: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": key}
    return client.post("/api/v1/stamps", json={"token": token}, headers=headers)


def ledger(database_url: str) -> dict[str, str]:
    """Idempotency key -> entry id of every stamp in the ledger (asserting keys are unique)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT idempotency_key, id FROM ledger_entry")).all()
    finally:
        engine.dispose()
    entries = {key: entry_id for key, entry_id in rows}
    assert len(entries) == len(rows), "an Idempotency-Key was written twice"
    return entries


def test_a_killed_server_loses_no_answered_stamp_doubles_none_and_logs_nobody(
    instance: Instance, database_url: str
) -> None:
    # One test, because every server start costs seconds: kill under load, restart, check the
    # ledger, then ask as someone with a user agent and an IP address and read the logs.
    slug, secret = shop(instance)
    base = instance.serve()
    with httpx.Client(base_url=base) as client:
        tokens = [client.post("/api/v1/cards").json()["token"] for _ in range(24)]
    load = Load(base, secret, tokens)
    threads = [threading.Thread(target=load.worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    # About two seconds of load (longer on a busy machine, until a fair number was answered).
    started = time.monotonic()
    while time.monotonic() - started < 2 or len(load.answered) < 100:
        assert time.monotonic() - started < 30 and not load.refused, load.refused
        time.sleep(0.05)
    instance.servers[-1].kill()  # SIGKILL: no shutdown, no flush, mid-request
    instance.servers[-1].wait(timeout=10)
    load.stop.set()
    for thread in threads:
        thread.join(timeout=20)
    assert not load.refused
    assert len(load.sent) > len(load.answered), "the kill did not land mid-load"

    # Every stamp answered before the kill is in the ledger, with the id it was answered with.
    written = ledger(database_url)
    assert {k: written.get(k) for k in load.answered} == load.answered
    assert set(written) <= set(load.sent)

    # After a restart the till retries what got no answer: each key stamps exactly once.
    base = instance.serve()
    with httpx.Client(base_url=base) as client:
        for key, token in load.sent.items():
            if key not in load.answered:
                response = send_stamp(client, secret, token, key)
                assert response.status_code == 201, response.text
                if key in written:
                    assert response.json()["entry_id"] == written[key]
                    assert response.headers.get("idempotent-replayed") == "true"
        # Balances are the ledger's sums: one stamp per key, nothing lost, nothing doubled.
        for token in tokens:
            expected = sum(1 for t in load.sent.values() if t == token)
            cards = client.get(f"/api/v1/cards/{token}").json()["cards"]
            assert sum(card["stamps"] for card in cards) == expected
    assert set(ledger(database_url)) == set(load.sent)

    ask_as_someone(base, slug, secret)
    instance.stop()
    assert_no_ip_or_user_agent(instance.log.read_text(errors="replace"))


def ask_as_someone(base: str, slug: str, secret: str) -> None:
    """Requests that carry a user agent and a forwarded IP address, answered well or refused."""
    headers = {"User-Agent": USER_AGENT, "X-Forwarded-For": FORWARDED_FOR,
               "Forwarded": f"for={FORWARDED_FOR}", "X-Real-IP": FORWARDED_FOR}  # fmt: skip
    with httpx.Client(base_url=base, headers=headers) as client:
        token = client.post("/api/v1/cards").json()["token"]
        key = uuid.uuid4().hex
        assert send_stamp(client, secret, token, key).status_code == 201
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", f"/api/v1/cards/{token}", {}),
            ("GET", "/", {}),
            ("GET", f"/m/{slug}", {}),
            ("GET", f"/c/{token}", {}),
            ("GET", "/api/v1/cards/NOTACARD", {}),  # 404
            ("GET", "/nowhere", {}),  # 404
            ("POST", "/api/v1/stamps", {"json": {"token": token}}),  # 401: no device
            ("POST", "/api/v1/stamps", {"content": b"{not json", "headers": {
                "Authorization": f"Bearer {secret}", "Content-Type": "application/json"}}),
            ("POST", "/api/v1/stamps", {"json": {"token": token}, "headers": {
                "Authorization": f"Bearer {secret}", "Idempotency-Key": key}}),  # replayed
            ("POST", "/api/v1/stamps", {"json": {"token": "x" * 200, "count": 1}, "headers": {
                "Authorization": f"Bearer {secret}"}}),  # 422: not a card
            ("POST", "/api/v1/stamps", {"content": b"x" * 100_000, "headers": {
                "Authorization": f"Bearer {secret}"}}),  # 413
        ]  # fmt: skip
        for method, path, options in requests:
            response = client.request(method, path, **options)
            assert response.status_code < 500, (path, response.status_code)


def assert_no_ip_or_user_agent(output: str) -> None:
    assert "TreuProbe" not in output and "Mozilla" not in output
    assert FORWARDED_FOR not in output
    assert not IPV4_ADDRESS.search(output), output
    assert '" 200' not in output and "HTTP/1.1" not in output  # no access log line at all


# --- faults under load: 503, never 500, and a line in the log now and then ----------------------


@dataclass
class Tally:
    """Stamps sent from several threads, each with its own Idempotency-Key, whatever the answer:
    the status each key got (a 503 must carry Retry-After), and the keys sent."""

    base: str
    secret: str
    tokens: list[str]
    sent: dict[str, str] = field(default_factory=dict)  # idempotency key -> token
    status: dict[str, int] = field(default_factory=dict)  # idempotency key -> status
    problems: list[str] = field(default_factory=list)  # malformed 503s, requests unanswered
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def worker(self, n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                token = rng.choice(self.tokens)
                key = uuid.uuid4().hex
                with self.lock:
                    self.sent[key] = token
                try:
                    response = send_stamp(client, self.secret, token, key)
                except httpx.TransportError as exc:
                    self.problems.append(f"no answer: {exc!r}")
                    return
                with self.lock:
                    self.status[key] = response.status_code
                if response.status_code == 503:
                    if response.headers.get("retry-after") != "5":
                        self.problems.append(response.text)
                    time.sleep(0.05)

    def count(self, status: int) -> int:
        with self.lock:
            return sum(1 for s in self.status.values() if s == status)

    def run(self, threads: int = 8) -> list[threading.Thread]:
        started = [threading.Thread(target=self.worker, args=(n,)) for n in range(threads)]
        for thread in started:
            thread.start()
        return started

    def wait_for(self, status: int, count: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while self.count(status) < count:
            seen = Counter(self.status.values())
            assert time.monotonic() < deadline, f"not {count} answers {status}: {seen}"
            time.sleep(0.05)

    def finish(self, threads: list[threading.Thread]) -> None:
        self.stop.set()
        for thread in threads:
            thread.join(timeout=60)

    def resend_unwritten(self, database_url: str) -> None:
        """The till's retry: every stamp that got no 201 again, with its key; then the ledger
        holds every key once, and each card's balance is the sum of its stamps."""
        with httpx.Client(base_url=self.base, timeout=30) as client:
            for key, token in self.sent.items():
                if self.status.get(key) != 201:
                    response = send_stamp(client, self.secret, token, key)
                    for _ in range(60):  # as the till does: a 503 is sent again a bit later
                        if response.status_code != 503:
                            break
                        time.sleep(0.5)
                        response = send_stamp(client, self.secret, token, key)
                    assert response.status_code == 201, response.text
            for token in self.tokens:
                expected = sum(1 for t in self.sent.values() if t == token)
                cards = client.get(f"/api/v1/cards/{token}").json()["cards"]
                assert sum(card["stamps"] for card in cards) == expected
        assert set(ledger(database_url)) == set(self.sent)


def writer_child(server: subprocess.Popen[bytes]) -> int:
    """The pid of the ledger writer, the child process `treu serve` spawned."""
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
            cmdline = (status.parent / "cmdline").read_bytes()
            if int(fields["PPid"]) == server.pid and b"spawn_main" in cmdline:
                return int(status.parent.name)
    raise AssertionError("no ledger writer process")


def assert_a_few_fault_lines(log: str) -> None:
    """One line per kind of fault (per process, per 10 s), no traceback, no address. (psycopg
    may add one line of its own when a connection dies under a pipeline: "error ignored
    terminating <psycopg.Pipeline [BAD]>: the connection is lost".)"""
    assert "Traceback" not in log and "unexpected error" not in log, log
    lines = [line for line in log.splitlines() if line.strip()]
    assert any(line.startswith("fault ") for line in lines), lines
    assert len(lines) <= 4, lines
    assert not IPV4_ADDRESS.search(log), log


def test_a_killed_ledger_writer_under_load_answers_503_never_500(
    instance: Instance, database_url: str
) -> None:
    _slug, secret = shop(instance)
    base = instance.serve()
    with httpx.Client(base_url=base) as client:
        tokens = [client.post("/api/v1/cards").json()["token"] for _ in range(24)]
    log_before = instance.log.stat().st_size
    load = Tally(base, secret, tokens)
    threads = load.run()
    load.wait_for(201, 100)
    os.kill(writer_child(instance.servers[-1]), signal.SIGKILL)
    # A new writer takes over: stamps are answered again.
    answered = load.count(201)
    load.wait_for(201, answered + 100)
    load.finish(threads)

    assert set(load.status.values()) <= {201, 503}, sorted(set(load.status.values()))
    assert not load.problems
    load.resend_unwritten(database_url)
    instance.stop()
    assert_a_few_fault_lines(instance.log.read_bytes()[log_before:].decode(errors="replace"))


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    running = postgres_proxy()
    yield running
    running.stop()


def test_a_database_outage_under_load_answers_503_and_logs_a_line(
    instance: Instance, database_url: str, proxy: TcpProxy
) -> None:
    via_proxy = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    instance.env["TREU_DATABASE_URL"] = via_proxy.render_as_string(hide_password=False)
    _slug, secret = shop(instance)
    base = instance.serve()
    with httpx.Client(base_url=base) as client:
        tokens = [client.post("/api/v1/cards").json()["token"] for _ in range(24)]
    log_before = instance.log.stat().st_size
    load = Tally(base, secret, tokens)
    threads = load.run()
    load.wait_for(201, 100)
    proxy.stop()  # three seconds without PostgreSQL
    load.wait_for(503, 1)
    time.sleep(3)
    proxy.start()
    answered = load.count(201)
    load.wait_for(201, answered + 100)
    load.finish(threads)

    assert set(load.status.values()) == {201, 503}, sorted(set(load.status.values()))
    assert not load.problems
    load.resend_unwritten(database_url)
    instance.stop()
    assert_a_few_fault_lines(instance.log.read_bytes()[log_before:].decode(errors="replace"))


# --- slow clients --------------------------------------------------------------------------------


def held_for(port: int, first: bytes, each: bytes, every: float = 0.5) -> float:
    """Send `first`, then `each` every `every` seconds (at most 40 times): how long until the
    server closed the connection (inf if it never did)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(first)
            for _ in range(40):
                readable, _, _ = select.select([sock], [], [], every)
                if readable and not sock.recv(65536):
                    return time.monotonic() - started
                if each:
                    sock.sendall(each)
        except OSError:  # reset
            return time.monotonic() - started
    return float("inf")


def test_a_slow_or_silent_client_is_cut_off(instance: Instance) -> None:
    base = instance.serve()
    port = int(base.rsplit(":", 1)[1])
    trickles = {
        "silent": (b"", b""),
        "headers a line at a time": (b"GET /healthz HTTP/1.1\r\n", b"X-Slow: 1\r\n"),
        "body a byte at a time": (
            b"POST /api/v1/stamps HTTP/1.1\r\nHost: treu\r\nContent-Length: 100\r\n"
            b"Content-Type: application/json\r\n\r\n",
            b" ",
        ),
        "idle after a request": (b"GET /healthz HTTP/1.1\r\nHost: treu\r\n\r\n", b""),
    }
    with ThreadPoolExecutor(len(trickles)) as pool:
        held = {name: pool.submit(held_for, port, *sent) for name, sent in trickles.items()}
        # Meanwhile everyone else is served.
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        seconds = {name: future.result() for name, future in held.items()}
    for name in ("silent", "headers a line at a time", "body a byte at a time"):
        assert REQUEST_SECONDS - 1 < seconds[name] < REQUEST_SECONDS + 5, (name, seconds)
    assert KEEP_ALIVE_SECONDS - 1 < seconds["idle after a request"] < REQUEST_SECONDS, seconds

    # A request head of a megabyte is refused at the first 64 KiB.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: treu\r\n")
        with contextlib.suppress(OSError):  # the server closes while the rest is sent
            for _ in range(128):
                sock.sendall(b"X-Big: " + b"a" * 8192 + b"\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 431 ")
    assert MAX_HEAD_BYTES < 128 * 8192
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
