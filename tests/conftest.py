"""Fixtures: a fresh database per test (a copied SQLite file, or truncated PostgreSQL tables),
keys made once per run, a movable clock, and helpers that speak the public API."""

import base64
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nacl.signing
import nacl.utils
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from app.config import Settings
from app.db import make_engine
from app.ledger.service import Command
from app.main import create_app
from app.merchants import service as merchants
from app.migrations import upgrade
from app.tokens import crypto

PG_URL = os.environ.get("TREU_TEST_DATABASE_URL", "")


class Clock:
    """A clock the test moves by hand; starts at a fixed instant."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


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
        **key_env,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(settings: Settings, clock: Clock) -> Iterator[FastAPI]:
    application = create_app(settings, clock=clock)
    yield application
    application.state.writer.stop()
    application.state.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass
class Shop:
    merchant_id: int
    slug: str
    program_id: int
    device_id: int
    secret: str
    owner_email: str
    owner_password: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


def make_shop(app: FastAPI, name: str, **options: Any) -> Shop:
    with Session(app.state.engine, expire_on_commit=False) as session:
        new = merchants.create_merchant(
            session=session,
            name=name,
            stamps_required=options.pop("stamps_required", 10),
            reward=options.pop("reward", "1 free coffee"),
            now=app.state.clock(),
            **options,
        )
        device, secret = merchants.create_device(
            session=session, merchant=new.merchant, now=app.state.clock()
        )
        session.commit()
        assert new.merchant.id and new.program.id and device.id
        return Shop(new.merchant.id, new.merchant.slug, new.program.id, device.id, secret,
                    new.owner_email, new.owner_password)  # fmt: skip


@pytest.fixture
def shop(app: FastAPI) -> Shop:
    return make_shop(app, "Café Sonne")


@pytest.fixture
def other_shop(app: FastAPI) -> Shop:
    return make_shop(app, "Bäckerei Gruber", stamps_required=5, reward="1 loaf")


def ledger_command(
    app: FastAPI, shop: Shop, card_id: bytes, op: str = "stamp", **fields: Any
) -> Command:
    """A command as the stamp route would queue it for this card at the shop's device (for
    tests that drive the ledger writer directly). The fingerprint is taken of the fields."""
    keyring = app.state.keyring
    return Command(
        op=op,  # type: ignore[arg-type]
        merchant_id=shop.merchant_id,
        device_id=shop.device_id,
        now=app.state.clock(),
        holder=crypto.holder_for(keyring, card_id, shop.merchant_id),
        card_ref=crypto.card_ref(keyring, card_id),
        fingerprint=crypto.request_fingerprint(keyring, shop.merchant_id, repr(fields).encode()),
        **fields,
    )


def new_card(client: TestClient) -> str:
    response = client.post("/api/v1/cards")
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


@pytest.fixture
def card(client: TestClient) -> str:
    return new_card(client)


def stamp(client: TestClient, shop: Shop, token: str, key: str | None = None, **body: Any) -> Any:
    headers = dict(shop.auth)
    headers["Idempotency-Key"] = key or uuid.uuid4().hex
    return client.post("/api/v1/stamps", json={"token": token, **body}, headers=headers)


def redeem(client: TestClient, shop: Shop, token: str, key: str | None = None, **body: Any) -> Any:
    headers = dict(shop.auth)
    headers["Idempotency-Key"] = key or uuid.uuid4().hex
    return client.post("/api/v1/redemptions", json={"token": token, **body}, headers=headers)


def void(client: TestClient, shop: Shop, entry_id: str, key: str | None = None) -> Any:
    headers = dict(shop.auth)
    headers["Idempotency-Key"] = key or uuid.uuid4().hex
    return client.post(f"/api/v1/entries/{entry_id}/void", headers=headers)
