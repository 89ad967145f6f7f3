"""Wrong passwords sent all at once to a real `treu serve` leave the database to everyone else:
the card page and card creation still answer within a second, no login answers 500, and the
server's memory grows by at most the few password checks it runs at once.

Slow (a real server process), but part of every `make test` run.
"""

import json
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers.browser import free_port

pytestmark = pytest.mark.slow

TREU = str(Path(sys.executable).with_name("treu"))
HTML = {"Accept": "text/html"}
ATTACKERS = 16
CHECKS_AT_ONCE = 2
ARGON2_MIB = 64  # what one Argon2id check takes (libsodium's "interactive" limit)


@dataclass
class Server:
    base: str
    pid: int
    owner_email: str

    def peak_mib(self) -> int:
        """The server's peak resident memory so far (VmHWM), in MiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        assert found
        return int(found.group(1)) // 1024


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREU_")}
    env |= {
        "TREU_DATA_DIR": str(tmp_path / "data"),
        "TREU_DATABASE_URL": database_url,
        # All the load comes from one address: this test is about the password checks running
        # at once, not the per-client limit (tests/merchants/test_auth.py has that).
        "TREU_RATE_LIMITS": "off",
        "TREU_PASSWORD_CHECKS": str(CHECKS_AT_ONCE),
    }

    def treu(*args: str) -> str:
        done = subprocess.run([TREU, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    treu("init")
    created = json.loads(treu(
        "merchant", "create", "--name", "Café Sonne", "--stamps-required", "10",
        "--reward", "1 free coffee", "--json",
    ))  # fmt: skip
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [TREU, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield Server(base, proc.pid, created["owner_email"])
    finally:
        proc.kill()
        proc.wait(timeout=20)


def bad_login(client: httpx.Client, email: str) -> httpx.Response:
    """The login form as a browser posts it (its own cookie and CSRF token), wrong password."""
    form = client.get("/merchant/login", headers=HTML)
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.text)
    assert token, form.text
    data = {"email": email, "password": "not-the-password", "csrf_token": token.group(1)}
    return client.post("/merchant/login", data=data, headers=HTML)


def attack(base: str, seconds: float, answers: Path) -> None:
    """ATTACKERS browsers posting wrong passwords for `seconds`, each to an address of its own
    (so that every one is checked, none is held up by the failures before it); the answers
    (status, Retry-After) go to a JSON file. Run in a process of its own, so that the test's
    own requests do not wait for the attackers' share of this process's GIL."""
    stop = time.monotonic() + seconds
    found: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def attacker() -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            while time.monotonic() < stop:
                response = bad_login(client, f"guess-{uuid.uuid4().hex[:12]}@example.org")
                with lock:
                    found.append((response.status_code, response.headers.get("retry-after")))

    threads = [threading.Thread(target=attacker) for _ in range(ATTACKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers.write_text(json.dumps(found))


def timed(send: Callable[[], httpx.Response]) -> tuple[float, int]:
    start = time.monotonic()
    response = send()
    return time.monotonic() - start, response.status_code


def test_wrong_passwords_at_once_leave_cards_and_pages_answering(
    server: Server, tmp_path: Path
) -> None:
    with httpx.Client(base_url=server.base, timeout=60) as client:
        token = client.post("/api/v1/cards").json()["token"]
        assert bad_login(client, server.owner_email).status_code == 401
        assert client.get(f"/c/{token}", headers=HTML).status_code == 200
        # The peak after one check: the app's own memory and one Argon2id run.
        before = server.peak_mib()

        answers = tmp_path / "answers.json"
        attackers = multiprocessing.get_context("spawn").Process(
            target=attack, args=(server.base, 5.0, answers)
        )
        attackers.start()
        try:
            time.sleep(1)  # every attacker has a login on the way
            pages, creations = [], []
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                pages.append(timed(lambda: client.get(f"/c/{token}", headers=HTML)))
                creations.append(timed(lambda: client.post("/api/v1/cards")))
        finally:
            attackers.join(timeout=120)
        peak = server.peak_mib()

    assert {status for _, status in pages} == {200}
    assert {status for _, status in creations} == {201}
    assert max(seconds for seconds, _ in pages) < 1.0, sorted(pages)[-3:]
    assert max(seconds for seconds, _ in creations) < 1.0, sorted(creations)[-3:]
    logins = json.loads(answers.read_text())
    statuses = [status for status, _ in logins]
    # Wrong passwords were checked, and the logins beyond the checks at once were told to
    # come back (the login form again, with Retry-After): none was a 500.
    assert 401 in statuses and 503 in statuses, statuses
    assert set(statuses) <= {401, 503}, statuses
    assert all(wait and int(wait) >= 1 for status, wait in logins if status == 503)
    # At most CHECKS_AT_ONCE Argon2id runs at once (one of them was counted in `before`).
    assert peak - before < CHECKS_AT_ONCE * ARGON2_MIB, (before, peak)
