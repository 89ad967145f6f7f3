"""A fresh install that is not the demo, with the real `treu` command in real processes: the
README's first-shop steps as written, the loud warning of `treu serve` about demo logins on a
public (https) treu, the demo's printed URLs matching what `treu serve` then serves, and demo
logins kept per database (a second database never prints, or is handed, the first's secrets).

Runs on SQLite and, with TREU_TEST_DATABASE_URL, on PostgreSQL (a database made per test).
"""

import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.cli import cli
from tests.helpers.browser import free_port
from tests.helpers.cli import KEY_VARS
from tests.helpers.database import PG_URL

TREU = str(Path(sys.executable).with_name("treu"))
ROOT = Path(__file__).resolve().parents[1]
TINY_DEMO = ("--cards", "5", "--months", "1", "--visits", "20")


@pytest.fixture
def new_database(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes empty databases: SQLite files, or PostgreSQL databases dropped after the test."""
    made: list[str] = []

    def make() -> str:
        name = f"treu_shop_{uuid.uuid4().hex[:10]}"
        if not PG_URL:
            return f"sqlite:///{tmp_path / name / 'treu.db'}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        made.append(name)
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    if made:
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def environment(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The calling shell's environment without any TREU_ setting, then these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREU_")}
    env.update(TREU_DATA_DIR=str(data_dir), TREU_DATABASE_URL=database_url, **extra)
    return env


def treu(env: dict[str, str], *args: str) -> str:
    """`treu` run in-process (a process each would cost seconds) with exactly this environment."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("TREU_")}
    unset.update(dict.fromkeys(KEY_VARS))
    result = CliRunner().invoke(cli, list(args), env={**unset, **env})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def demo(env: dict[str, str], *args: str) -> dict[str, Any]:
    return json.loads(treu(env, "demo", "--if-empty", *TINY_DEMO, *args, "--json"))  # type: ignore[no-any-return]


def stamp(base: str, secret: str, token: str) -> int:
    response = httpx.post(
        f"{base}/api/v1/stamps",
        json={"token": token, "count": 1},
        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": uuid.uuid4().hex},
        timeout=10,
    )
    return response.status_code


class Server:
    """A real `treu serve`; its stderr is collected in a file."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.log = log
        self.base = f"http://127.0.0.1:{port}"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [TREU, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"treu serve did not answer: {log.read_text()}")

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        return self.log.read_text()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.stop()


# --- (a) the README's path to a first real shop ----------------------------------------------


def readme_first_shop() -> list[list[str]]:
    """The `treu` commands of the README's "Your first real shop", as a shell splits them."""
    section = (ROOT / "README.md").read_text().split("## Your first real shop", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [c for c in commands if c]


def test_the_readmes_first_shop_steps_work_as_written(
    tmp_path: Path, new_database: Callable[[], str], servers: list[Server]
) -> None:
    commands = readme_first_shop()
    assert [c[0] for c in commands] == ["export", "treu", "treu", "treu", "treu"]
    exported = dict(word.split("=", 1) for word in commands[0][1:])
    public = exported["TREU_PUBLIC_URL"]
    assert public.startswith("https://")
    env = environment(tmp_path / exported["TREU_DATA_DIR"], new_database(), TREU_PUBLIC_URL=public)
    for command in commands[1:-1]:
        out = treu(env, *command[1:])
    listing = treu(env, "merchant", "list")
    assert listing.startswith("cafe-sonne\tCafé Sonne")
    assert "/till/pair/" in out and out.count(public) == 1  # the pairing URL, under the public URL
    # `treu serve` as written: its options are real, and it serves what the poster opens.
    serve = commands[-1]
    assert serve[1] == "serve" and serve[serve.index("--host") + 1] == "127.0.0.1"
    server = Server(env, free_port(), tmp_path / "serve.log")
    servers.append(server)
    assert httpx.get(f"{server.base}/m/cafe-sonne").status_code == 200
    assert httpx.get(f"{server.base}/merchant/login").status_code == 200
    # A real shop is no demo: no warning, though the public URL is https.
    assert "WARNING" not in server.stop()


# --- (b) the loud warning ----------------------------------------------------------------------


def test_serve_warns_of_demo_logins_on_a_public_treu(
    tmp_path: Path, new_database: Callable[[], str], servers: list[Server]
) -> None:
    env = environment(tmp_path / "data", new_database())
    treu(env, "init")
    demo(env)
    public = Server({**env, "TREU_PUBLIC_URL": "https://stamps.example.com"}, free_port(),
                    tmp_path / "public.log")  # fmt: skip
    servers.append(public)
    said = public.stop()
    assert "WARNING: https://stamps.example.com is public (https)" in said
    assert "'treu-demo'" in said and "owner@cafe-sonne.example" in said
    # ... and in the log, as a record of the "treu" logger.
    assert "demo merchants with the published password on a public treu" in said
    # On http (trying treu on one's own machine) it says nothing.
    local = Server(env, free_port(), tmp_path / "local.log")
    servers.append(local)
    assert "WARNING" not in local.stop()


# --- (c) printed URLs follow what is served ----------------------------------------------------


def test_the_demos_printed_urls_are_those_treu_serve_then_serves(
    tmp_path: Path, new_database: Callable[[], str], servers: list[Server]
) -> None:
    env = environment(tmp_path / "data", new_database())
    treu(env, "init")
    port = free_port()
    printed = treu(env, "demo", "--if-empty", *TINY_DEMO, "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    urls = set(re.findall(r"https?://[^\s]+", printed))
    assert urls and all(url.startswith(base + "/") or url == base for url in urls), urls
    server = Server(env, port, tmp_path / "serve.log")
    servers.append(server)
    for url in urls:
        assert httpx.get(url, timeout=10).status_code == 200, url
    # With a public URL, both follow it instead of the port.
    again = demo({**env, "TREU_PUBLIC_URL": "https://stamps.example.com/"})
    assert again["demo_card"]["card_url"].startswith("https://stamps.example.com/c/")


# --- (d) demo logins per database ----------------------------------------------------------------


def test_demo_logins_are_kept_per_database(
    tmp_path: Path, new_database: Callable[[], str], servers: list[Server]
) -> None:
    data = tmp_path / "data"  # one data dir, as with `make run`, and two databases
    first = environment(data, new_database())
    second = environment(data, new_database())
    treu(first, "init")
    treu(second, "init")
    a = demo(first)
    b = demo(second)  # a demo of its own, not the first's logins
    secrets = {m["device_secret"] for m in a["merchants"]}
    assert secrets.isdisjoint(m["device_secret"] for m in b["merchants"])
    assert len(list(data.glob("demo-*.json"))) == 2
    # Each database prints its own logins again, and they work against it.
    assert demo(first) == a
    server = Server(first, free_port(), tmp_path / "serve.log")
    servers.append(server)
    shown = demo(first, "--port", server.base.rsplit(":", 1)[1])
    token = shown["demo_card"]["token"]
    assert stamp(server.base, shown["merchants"][0]["device_secret"], token) == 201
    # What went wrong before: the other database's secret, refused by this one's server.
    assert stamp(server.base, b["merchants"][0]["device_secret"], token) == 401
    server.stop()
    # A database with a real shop and no demo prints none of another's secrets.
    third = environment(data, new_database())
    treu(third, "init")
    treu(third, "merchant", "create", "--name", "Café Real", "--stamps-required", "10",
         "--reward", "1 Kaffee")  # fmt: skip
    skipped = treu(third, "demo", "--if-empty")
    assert "no demo data written" in skipped
    assert not any(secret in skipped for secret in secrets)


def test_an_old_single_demo_file_is_shown_only_for_its_own_database(
    tmp_path: Path, new_database: Callable[[], str]
) -> None:
    data = tmp_path / "data"
    first = environment(data, new_database())
    treu(first, "init")
    a = demo(first)
    # As an older treu kept it: one demo.json for the data dir, whatever the database.
    (kept,) = data.glob("demo-*.json")
    kept.rename(data / "demo.json")
    assert demo(first)["merchants"] == a["merchants"]
    other = environment(data, new_database())
    treu(other, "init")
    treu(other, "merchant", "create", "--name", "Café Real", "--stamps-required", "10",
         "--reward", "1 Kaffee")  # fmt: skip
    assert demo(other) == {"skipped": True, "merchants": []}
