"""The `treu` command, run in-process: keys, migrations, merchants, devices, rotation, printing.

Everything that touches the database runs on SQLite and, with TREU_TEST_DATABASE_URL, on
PostgreSQL.
"""

import base64
import hashlib
import html
import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.signing
import nacl.utils
import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import select

from app.db import make_engine
from app.merchants.models import Device, Merchant, Owner, Program
from app.merchants.service import verify_password
from app.migrations import alembic_config
from app.tokens import crypto, qr
from app.tokens.keys import load_keyring
from app.tokens.models import Card
from tests.helpers.cli import Treu, hermetic_env, initialised
from tests.helpers.database import PG_URL, database_text

KEY_FILES = ("signing", "holder", "card-ref", "wallet", "session")


@pytest.fixture
def treu(database_url: str, tmp_path: Path) -> Treu:
    return initialised(database_url, tmp_path)


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database without any table, for `treu init` to migrate."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'empty' / 'treu.db'}"
        return
    name = f"treu_cli_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def stamp(client: TestClient, secret: str, token: str, **body: Any) -> Any:
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": uuid.uuid4().hex}
    return client.post("/api/v1/stamps", json={"token": token, **body}, headers=headers)


def merchant(treu: Treu, *extra: str, name: str = "Café Sonne") -> dict[str, Any]:
    return treu.json(  # type: ignore[no-any-return]
        "merchant", "create", "--name", name, "--stamps-required", "10",
        "--reward", "1 free coffee", *extra,
    )  # fmt: skip


# --- treu init ------------------------------------------------------------------------------


def test_init_creates_private_keys_and_migrates(empty_database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    treu = Treu(data, empty_database_url, hermetic_env())
    out = treu.json("init")
    assert sorted(out["keys_created"]) == sorted(KEY_FILES)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "keys").stat().st_mode) == 0o700
    for name in KEY_FILES:
        path = data / "keys" / f"{name}.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert len(base64.b64decode(path.read_text())) == 32
    # Every migration is applied: the database is at the newest revision and has the tables.
    head = ScriptDirectory.from_config(alembic_config(empty_database_url)).get_current_head()
    engine = make_engine(empty_database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
        assert {"merchant", "device", "card", "balance", "ledger_entry"} <= set(
            inspect(conn).get_table_names()
        )
    engine.dispose()


def test_init_names_the_database_it_migrated(empty_database_url: str, tmp_path: Path) -> None:
    """On PostgreSQL the database is not in the data dir: init names the one it migrated."""
    treu = Treu(tmp_path / "fresh", empty_database_url, hermetic_env())
    url = make_url(empty_database_url)
    named = (
        str(Path(str(url.database)).resolve())
        if url.get_backend_name() == "sqlite"
        else url.set(password=None).render_as_string(hide_password=False)
    )
    out = treu.json("init")
    assert out["database"] == named
    assert out["data_dir"] == str(treu.data_dir.resolve())
    text = treu("init").stdout
    assert f"database up to date: {named}" in text
    assert str(url.database) in text  # the file, or the PostgreSQL database's name
    if url.password:
        assert url.password not in text


def test_init_twice_never_overwrites_a_key(treu: Treu) -> None:
    keys = treu.data_dir / "keys"
    before = {p.name: p.read_bytes() for p in keys.iterdir()}
    (keys / "holder.key").unlink()  # one key lost: only that one is made again
    assert treu.json("init")["keys_created"] == ["holder"]
    assert treu.json("init")["keys_created"] == []
    after = {p.name: p.read_bytes() for p in keys.iterdir()}
    assert after.keys() == before.keys()
    assert {n: v for n, v in after.items() if n != "holder.key"} == {
        n: v for n, v in before.items() if n != "holder.key"
    }


def test_keys_from_the_environment_are_used_instead_of_files(
    database_url: str, tmp_path: Path
) -> None:
    signing = nacl.signing.SigningKey.generate()
    given = {"signing_key": base64.b64encode(bytes(signing)).decode()}
    given |= {
        f"{name}_key": base64.b64encode(nacl.utils.random(32)).decode()
        for name in ("holder", "card_ref", "wallet", "session")
    }
    treu = Treu(tmp_path / "data", database_url, hermetic_env(**given))
    assert treu.json("init")["keys_created"] == []
    assert not list((treu.data_dir / "keys").glob("*.key"))
    shop = merchant(treu)
    device = treu.json("device", "create", "--merchant", shop["slug"])
    with pytest.MonkeyPatch.context() as env:
        for name, value in given.items():
            env.setenv(f"TREU_{name.upper()}", value)
        with treu.api() as client:
            token = client.post("/api/v1/cards").json()["token"]
            assert stamp(client, device["secret"], token).status_code == 201
    kid = crypto.b32decode(token)[1:5]
    assert kid == crypto.key_id_of(signing.verify_key)


def test_commands_before_init_say_what_to_do(tmp_path: Path) -> None:
    treu = Treu(
        tmp_path / "nothing", f"sqlite:///{tmp_path / 'nothing' / 'treu.db'}", hermetic_env()
    )
    for args in (("merchant", "list"), ("cards", "print", "--merchant", "x")):
        result = treu(*args, ok=False)
        assert result.exit_code == 1
        assert "treu init" in result.stderr
        assert "Traceback" not in result.output


# --- treu merchant create ---------------------------------------------------------------------


def test_merchant_create_prints_the_login_and_stores_only_its_hash(treu: Treu) -> None:
    out = merchant(
        treu, "--slug", "sonne", "--cooldown-seconds", "30", "--max-stamps-per-scan", "3"
    )
    assert set(out) == {"slug", "program_id", "owner_email", "owner_password"}
    assert out["slug"] == "sonne"
    with treu.session() as session:
        owner = session.exec(select(Owner).where(Owner.email == out["owner_email"])).one()
        program = session.get(Program, out["program_id"])
    assert owner.password_hash.startswith("$argon2id$")
    assert out["owner_password"] not in owner.password_hash
    assert verify_password(owner.password_hash, out["owner_password"])
    assert not verify_password(owner.password_hash, out["owner_password"] + "x")
    assert program is not None
    assert (program.stamps_required, program.reward_text) == (10, "1 free coffee")
    assert (program.cooldown_seconds, program.max_stamps_per_scan) == (30, 3)


def test_merchant_slug_comes_from_the_name(treu: Treu) -> None:
    assert merchant(treu, name="Salon Haarmonie")["slug"] == "salon-haarmonie"
    assert merchant(treu, name="Salon Haarmonie")["slug"] == "salon-haarmonie-2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--stamps-required", "0"), "--stamps-required"),
        (("--stamps-required", "ten"), "--stamps-required"),
        (("--slug", "Café Sonne"), "slug"),
        (("--slug", "taken"), "taken"),
        (("--cooldown-seconds", "-1"), "--cooldown-seconds"),
        (("--max-stamps-per-scan", "0"), "--max-stamps-per-scan"),
        (("--name", " "), "name"),
    ],
)
def test_bad_merchant_input_is_refused_and_writes_nothing(
    treu: Treu, args: tuple[str, ...], message: str
) -> None:
    merchant(treu, "--slug", "taken")
    before = database_text(treu.database_url)
    base = {"--name": "Café Sonne", "--stamps-required": "10", "--reward": "1 coffee"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    options = [part for pair in base.items() for part in pair]
    result = treu("merchant", "create", *options, "--json", ok=False)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert database_text(treu.database_url) == before


# --- treu device ------------------------------------------------------------------------------


def test_device_create_prints_a_strong_secret_stored_only_hashed(treu: Treu) -> None:
    shop = merchant(treu)
    out = treu.json("device", "create", "--merchant", shop["slug"], "--label", "Counter")
    assert set(out) == {"device_id", "secret"}
    secret = out["secret"]
    random_part = secret.removeprefix("treu_dev_")
    assert len(random_part) * 6 >= 128  # URL-safe base64: 6 bits a character
    with treu.session() as session:
        device = session.get(Device, out["device_id"])
    assert device is not None and device.label == "Counter"
    assert device.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    stored = database_text(treu.database_url)
    assert random_part not in stored
    if treu.database_url.startswith("sqlite"):
        files = treu.data_dir.glob("treu.db*")
        assert all(random_part.encode() not in f.read_bytes() for f in files)


def test_unknown_merchant_is_a_clear_error(treu: Treu) -> None:
    result = treu("device", "create", "--merchant", "nowhere", ok=False)
    assert result.exit_code == 1
    assert "nowhere" in result.stderr
    assert "Traceback" not in result.output


def test_device_list_and_revoke(treu: Treu) -> None:
    shop = merchant(treu)
    counter = treu.json("device", "create", "--merchant", shop["slug"], "--label", "Counter")
    terrace = treu.json("device", "create", "--merchant", shop["slug"], "--label", "Terrace")
    with treu.api() as client:
        token = client.post("/api/v1/cards").json()["token"]
        assert stamp(client, counter["secret"], token).status_code == 201

        revoked = treu.json("device", "revoke", "--merchant", shop["slug"], "--device",
                            str(counter["device_id"]))  # fmt: skip
        assert revoked["device_id"] == counter["device_id"] and revoked["revoked_at"]
        # The running server refuses the revoked device at once; the other one still works.
        refused = stamp(client, counter["secret"], token)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        other = client.post("/api/v1/cards").json()["token"]
        assert stamp(client, terrace["secret"], other).status_code == 201
    with treu.api() as client:
        assert stamp(client, counter["secret"], token).status_code == 401

    listed = treu.json("device", "list", "--merchant", shop["slug"])["devices"]
    state = {
        d["label"]: (d["revoked_at"] is not None, d["last_seen_at"] is not None) for d in listed
    }
    assert state == {"Counter": (True, True), "Terrace": (False, True)}
    text_out = treu("device", "list", "--merchant", shop["slug"]).stdout
    assert re.search(r"Counter\s+revoked", text_out) and re.search(r"Terrace\s+active", text_out)


def test_revoking_another_merchants_device_is_refused(treu: Treu) -> None:
    sonne = merchant(treu)
    gruber = merchant(treu, name="Bäckerei Gruber")
    device = treu.json("device", "create", "--merchant", sonne["slug"])
    result = treu("device", "revoke", "--merchant", gruber["slug"], "--device",
                  str(device["device_id"]), ok=False)  # fmt: skip
    assert result.exit_code == 1
    with treu.session() as session:
        stored = session.get(Device, device["device_id"])
        assert stored is not None and stored.revoked_at is None


# --- treu keys rotate -------------------------------------------------------------------------


def test_rotated_keys_keep_old_cards_and_sign_new_ones(treu: Treu) -> None:
    shop = merchant(treu, "--cooldown-seconds", "0")
    device = treu.json("device", "create", "--merchant", shop["slug"])
    with treu.api() as client:
        old = client.post("/api/v1/cards").json()["token"]
        assert stamp(client, device["secret"], old).status_code == 201
    old_kid = crypto.b32decode(old)[1:5].hex()

    new_kid = treu.json("keys", "rotate")["kid"]
    assert new_kid != old_kid
    assert stat.S_IMODE((treu.data_dir / "keys" / "retired").stat().st_mode) == 0o700
    retired = treu.data_dir / "keys" / "retired" / f"{old_kid}.key"
    assert stat.S_IMODE(retired.stat().st_mode) == 0o600

    with treu.api() as client:  # the server restarted with the new key
        new = client.post("/api/v1/cards").json()["token"]
        assert crypto.b32decode(new)[1:5].hex() == new_kid
        assert client.get(f"/api/v1/cards/{old}").json()["cards"][0]["stamps"] == 1
        assert stamp(client, device["secret"], old).json()["stamps"] == 2
        assert stamp(client, device["secret"], new).status_code == 201
        published = client.get("/.well-known/treu-keys.json").json()["keys"]
    assert {k["kid"]: k["status"] for k in published} == {new_kid: "current", old_kid: "retired"}


def test_rotating_a_key_from_the_environment_is_refused(treu: Treu) -> None:
    key = base64.b64encode(bytes(nacl.signing.SigningKey.generate())).decode()
    treu.env["TREU_SIGNING_KEY"] = key
    result = treu("keys", "rotate", ok=False)
    assert result.exit_code == 1
    assert "TREU_SIGNING_KEY" in result.stderr
    assert not (treu.data_dir / "keys" / "retired").exists()


# --- treu cards print -------------------------------------------------------------------------


def test_printed_cards_are_real_cards(treu: Treu) -> None:
    shop = merchant(treu)
    device = treu.json("device", "create", "--merchant", shop["slug"])
    out = treu.data_dir / "sheet.html"
    result = treu("cards", "print", "--merchant", shop["slug"], "--count", "12", "--out", str(out))
    assert "12 cards" in result.stdout
    sheet = out.read_text()
    assert html.escape("Café Sonne") in sheet or "Café Sonne" in sheet
    codes = re.findall(r"\b[A-Z2-7]{4}(?:-[A-Z2-7]{1,4}){6}\b", sheet)
    assert len(codes) == len(set(codes)) == 12

    settings = treu.settings()
    keyring = load_keyring(settings)
    with treu.session() as session:
        for code in codes:
            card_id = crypto.card_id_from_recovery_code(code)
            card = session.get(Card, crypto.card_ref(keyring, card_id))
            assert card is not None and card.deleted_day is None
            # The QR on the sheet is this card's QR (signatures are deterministic).
            token = crypto.sign_card(keyring, card_id)
            svg = qr.qr_svg(qr.card_qr_text(settings.base_url, token))
            (drawing,) = re.findall(r' d="([^"]+)"', svg)
            assert drawing in sheet
    with treu.api() as client:
        restored = client.post("/api/v1/cards/restore", json={"recovery_code": codes[0]})
        assert restored.status_code == 200
        assert stamp(client, device["secret"], restored.json()["token"]).status_code == 201


def test_merchant_list(treu: Treu) -> None:
    merchant(treu)
    merchant(treu, name="Salon Haarmonie")
    listed = treu.json("merchant", "list")["merchants"]
    assert [m["slug"] for m in listed] == ["cafe-sonne", "salon-haarmonie"]
    with treu.session() as session:
        assert len(session.exec(select(Merchant)).all()) == 2


def test_merchant_password_resets_a_forgotten_login(treu: Treu) -> None:
    out = merchant(treu, "--slug", "sonne")
    reset = treu.json("merchant", "password", "--merchant", "sonne")
    assert reset["owner_email"] == out["owner_email"]
    assert reset["owner_password"] != out["owner_password"]
    chosen = treu.json(
        "merchant", "password", "--merchant", "sonne", "--password", "a-long-new-one"
    )
    assert chosen["owner_password"] == "a-long-new-one"
    with treu.session() as session:
        owner = session.exec(select(Owner).where(Owner.email == out["owner_email"])).one()
    assert verify_password(owner.password_hash, "a-long-new-one")
    assert not verify_password(owner.password_hash, out["owner_password"])
    short = treu("merchant", "password", "--merchant", "sonne", "--password", "abc", ok=False)
    assert short.exit_code != 0 and "at least" in short.output


def test_analytics_rebuild_restores_the_rollups_from_the_ledger(treu: Treu) -> None:
    from sqlalchemy import text

    out = merchant(treu, "--slug", "sonne")
    device = treu.json("device", "create", "--merchant", "sonne")
    with treu.api() as client:
        token = client.post("/api/v1/cards").json()["token"]
        headers = {"Authorization": f"Bearer {device['secret']}", "Idempotency-Key": "k1"}
        client.post("/api/v1/stamps", json={"token": token, "count": 2}, headers=headers)
    count = text("SELECT count(*) FROM analytics_card")
    engine = make_engine(treu.database_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(count).scalar_one() == 1
            conn.execute(text("DELETE FROM analytics_card"))
        treu("analytics", "rebuild", "--merchant", out["slug"])
        with engine.connect() as conn:
            assert conn.execute(count).scalar_one() == 1
    finally:
        engine.dispose()
