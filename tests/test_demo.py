"""`treu demo`: merchants, devices and months of history whose balances are their ledger's sums."""

import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from app.clock import utcnow
from app.db import make_engine
from app.ledger.models import LedgerEntry
from tests.helpers.cli import Treu, hermetic_env
from tests.helpers.database import database_text

VIENNA = ZoneInfo("Europe/Vienna")
SIZES = ("--cards", "60", "--months", "3", "--visits", "1500")


@pytest.fixture
def treu(database_url: str, tmp_path: Path) -> Treu:
    command = Treu(tmp_path / "data", database_url, hermetic_env())
    command("init")
    return command


@pytest.fixture
def demo(treu: Treu) -> dict[str, Any]:
    started = time.monotonic()
    result: dict[str, Any] = treu.json("demo", *SIZES)
    assert time.monotonic() - started < 60
    return result


def rows(url: str, query: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query)))
    finally:
        engine.dispose()


def test_demo_makes_merchants_devices_owners_and_cards(treu: Treu, demo: dict[str, Any]) -> None:
    url = treu.database_url
    assert [m["slug"] for m in demo["merchants"]] == [
        "cafe-sonne", "baeckerei-gruber", "salon-haarmonie",
    ]  # fmt: skip
    assert rows(url, "SELECT count(*) FROM merchant")[0][0] == 3
    assert rows(url, "SELECT count(*) FROM owner")[0][0] == 3
    assert rows(url, "SELECT count(*) FROM device")[0][0] == 6
    assert rows(url, "SELECT count(*) FROM card")[0][0] == 60
    stamps = rows(url, "SELECT count(*) FROM ledger_entry WHERE kind = 'stamp'")[0][0]
    assert 1400 <= stamps <= 1700  # the visits asked for, give or take rounding per card
    assert rows(url, "SELECT count(*) FROM ledger_entry WHERE kind = 'redemption'")[0][0] > 0
    # Logins and secrets are printed, and kept (mode 0600) for `make run` to show again.
    assert (treu.data_dir / "demo.json").stat().st_mode & 0o077 == 0
    for m in demo["merchants"]:
        assert m["owner_email"] and m["owner_password"] and m["device_secret"]


def test_balances_are_the_sums_of_their_ledger_entries(treu: Treu, demo: dict[str, Any]) -> None:
    ledger = {
        (r.merchant_id, r.program_id, r.holder): r
        for r in rows(treu.database_url, """
            SELECT merchant_id, program_id, holder, sum(delta) AS stamps,
                   sum(CASE WHEN kind = 'stamp' THEN delta ELSE 0 END) AS lifetime,
                   sum(CASE WHEN kind = 'stamp' THEN 1 ELSE 0 END) AS visits,
                   sum(CASE WHEN kind = 'redemption' THEN 1 ELSE 0 END) AS redeemed,
                   min(created_at) AS first, max(created_at) AS last
            FROM ledger_entry GROUP BY merchant_id, program_id, holder""")
    }  # fmt: skip
    balances = rows(treu.database_url, "SELECT * FROM balance")
    assert len(balances) == len(ledger) > 60  # some cards collect at two shops
    for b in balances:
        sums = ledger[(b.merchant_id, b.program_id, b.holder)]
        assert (b.stamps, b.lifetime_stamps, b.visits, b.redeemed) == (
            sums.stamps, sums.lifetime, sums.visits, sums.redeemed,
        )  # fmt: skip
    # A reward is only redeemed once it is due: replayed in order, no balance goes below zero.
    running: Counter[tuple[int, int, str]] = Counter()
    for e in rows(treu.database_url, """
        SELECT merchant_id, program_id, holder, delta FROM ledger_entry
        ORDER BY created_at, CASE WHEN kind = 'stamp' THEN 0 ELSE 1 END"""):  # fmt: skip
        running[(e.merchant_id, e.program_id, e.holder)] += e.delta
        assert running[(e.merchant_id, e.program_id, e.holder)] >= 0


def test_history_is_spread_over_the_months_weekdays_and_opening_hours(
    treu: Treu, demo: dict[str, Any]
) -> None:
    entries = LedgerEntry.__table__  # type: ignore[attr-defined]
    engine = make_engine(treu.database_url)
    with engine.connect() as conn:
        query = select(entries.c.created_at).where(entries.c.kind == "stamp")
        local = [t.astimezone(VIENNA) for t in conn.execute(query).scalars()]
    engine.dispose()
    now = utcnow()
    assert all(now - timedelta(days=92) <= t <= now for t in local)
    by_month = Counter((now - t).days // 30 for t in local)
    assert {0, 1, 2} <= set(by_month), by_month
    by_weekday = Counter(t.weekday() for t in local)
    assert set(by_weekday) == set(range(7))
    assert by_weekday[5] > by_weekday[6]  # Saturday is busy, Sunday quiet
    assert {t.hour for t in local} <= set(range(7, 19))


def test_demo_if_empty_writes_nothing_the_second_time(treu: Treu, demo: dict[str, Any]) -> None:
    before = database_text(treu.database_url)
    again = treu.json("demo", *SIZES, "--if-empty")
    assert again == demo
    assert database_text(treu.database_url) == before
    printed = treu("demo", "--if-empty").stdout
    for m in demo["merchants"]:
        assert m["device_secret"] in printed and m["owner_password"] in printed
    assert demo["demo_card"]["card_url"] in printed


def test_a_second_demo_is_refused(treu: Treu, demo: dict[str, Any]) -> None:
    before = database_text(treu.database_url)
    result = treu("demo", *SIZES, ok=False)
    assert result.exit_code == 1
    assert "--if-empty" in result.stderr
    assert database_text(treu.database_url) == before


def test_the_printed_device_secret_stamps_the_printed_demo_card(
    treu: Treu, demo: dict[str, Any]
) -> None:
    cafe = demo["merchants"][0]
    token = demo["demo_card"]["token"]
    assert demo["demo_card"]["card_url"] == f"http://treu.test/c/{token}"
    with treu.api() as client:
        (before,) = [
            c for c in client.get(f"/api/v1/cards/{token}").json()["cards"]
            if c["merchant"]["slug"] == cafe["slug"]
        ]  # fmt: skip
        headers = {"Authorization": f"Bearer {cafe['device_secret']}",
                   "Idempotency-Key": uuid.uuid4().hex}  # fmt: skip
        response = client.post("/api/v1/stamps", json={"token": token}, headers=headers)
        assert response.status_code == 201, response.text
        assert response.json()["stamps"] == before["stamps"] + 1
