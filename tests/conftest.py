"""Fixtures: a fresh database per test (a copied SQLite file, or truncated PostgreSQL tables),
keys made once per run, a movable clock, an app and its client (and a second instance, for
writes at once through two), two shops and a card.
What tests share besides fixtures lives in tests/helpers."""

import base64
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import nacl.utils
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import make_engine
from app.main import create_app
from app.migrations import upgrade
from tests.helpers.api import new_card
from tests.helpers.clock import Clock
from tests.helpers.concurrency import warm_up
from tests.helpers.database import PG_URL
from tests.helpers.shops import Shop, make_shop


@pytest.fixture(scope="session")
def key_env() -> dict[str, str]:
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return {
        "signing_key": b64(bytes(nacl.signing.SigningKey.generate())),
        "holder_key": b64(nacl.utils.random(32)),
        "card_ref_key": b64(nacl.utils.random(32)),
        "wallet_key": b64(nacl.utils.random(32)),
        "session_key": b64(nacl.utils.random(32)),
    }


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database: a SQLite file to copy, or a PostgreSQL database made for this run."""
    if PG_URL:
        name = f"treu_test_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "treu.db"
        upgrade(f"sqlite:///{path}")
        yield str(path)


@pytest.fixture
def database_url(database_template: str, tmp_path: Path) -> str:
    if PG_URL:
        engine = make_engine(database_template)
        with engine.begin() as conn:
            # Every table the migrations made, so a new table is emptied without editing this.
            tables = [f'"{t}"' for t in inspect(conn).get_table_names() if t != "alembic_version"]
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return database_template
    target = tmp_path / "data" / "treu.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(database_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, key_env: dict[str, str]) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_url="http://treu.test",
        # Tests make many cards from one address; tests/test_rate_limits.py turns limits on.
        rate_limits="off",
        **key_env,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def serve(settings: Settings, clock: Clock) -> Iterator[FastAPI]:
    """An instance of the service, its ledger writer stopped and its connections closed after."""
    application = create_app(settings, clock=clock)
    yield application
    application.state.writer.stop()
    application.state.engine.dispose()


@pytest.fixture
def app(settings: Settings, clock: Clock) -> Iterator[FastAPI]:
    yield from serve(settings, clock)


@pytest.fixture
def second_app(settings: Settings, clock: Clock) -> Iterator[FastAPI]:
    """Another instance of the service on the same database, with its own ledger writer."""
    yield from serve(settings, clock)


@pytest.fixture(params=[1, 2], ids=["one-app", "two-apps"])
def apps(request: pytest.FixtureRequest, app: FastAPI) -> list[FastAPI]:
    """One app, or two instances of it on the same database, their write routes built."""
    chosen = [app] if request.param == 1 else [app, request.getfixturevalue("second_app")]
    for application in chosen:
        warm_up(application)
    return chosen


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def shop(app: FastAPI) -> Shop:
    return make_shop(app, "Café Sonne")


@pytest.fixture
def other_shop(app: FastAPI) -> Shop:
    return make_shop(app, "Bäckerei Gruber", stamps_required=5, reward="1 loaf")


@pytest.fixture
def card(client: TestClient) -> str:
    return new_card(client)
