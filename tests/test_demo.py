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
from tests.helpers.cli import Treu, initialised
from tests.helpers.database import database_text

VIENNA = ZoneInfo("Europe/Vienna")
SIZES = ("--cards", "60", "--months", "3", "--visits", "1500")


@pytest.fixture
def treu(database_url: str, tmp_path: Path) -> Treu:
    return initialised(database_url, tmp_path)


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
    # One file per database, so a second database never prints this one's secrets.
    (kept,) = treu.data_dir.glob("demo-*.json")
    assert kept.stat().st_mode & 0o077 == 0
    for m in demo["merchants"]:
        assert m["owner_email"] and m["owner_password"] and m["device_secret"]


def test_balances_are_the_sums_of_their_ledger_entries(treu: Treu, demo: dict[str, Any]) -> None:
    ledger = {
        (r.merchant_id, r.program_id, r.holder): r
        for r in rows(treu.database_url, """
            SELECT merchant_id, program_id, holder, sum(delta) AS stamps,
                   sum(CASE WHEN kind IN ('stamp', 'bonus') THEN delta ELSE 0 END) AS lifetime,
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
        # Status counts every stamp earned here (the demo shops' status never lapses); a card
        # has a visit before its latest one from its second visit on.
        assert b.status_stamps == b.lifetime_stamps
        assert (b.previous_visit_at is None) == (b.visits == 1)
    # A reward is only redeemed once it is due: replayed in order, no balance goes below zero.
    running: Counter[tuple[int, int, str]] = Counter()
    for e in rows(treu.database_url, """
        SELECT merchant_id, program_id, holder, delta FROM ledger_entry
        ORDER BY created_at, CASE WHEN kind = 'stamp' THEN 0 ELSE 1 END"""):  # fmt: skip
        running[(e.merchant_id, e.program_id, e.holder)] += e.delta
        assert running[(e.merchant_id, e.program_id, e.holder)] >= 0


def test_bonuses_are_booked_with_their_stamps(treu: Treu, demo: dict[str, Any]) -> None:
    """Every bonus in the history came with a stamp of the same card, as the ledger writer
    books one: from a promotion of that shop, or from the shop's tier."""
    bonuses = rows(treu.database_url, """
        SELECT b.merchant_id, b.promotion_id, p.merchant_id AS promotion_merchant,
               s.kind AS stamp_kind, s.holder = b.holder AS same_holder,
               s.program_id = b.program_id AS same_program,
               s.created_at = b.created_at AS same_time
        FROM ledger_entry b
        JOIN ledger_entry s ON s.id = b.for_entry_id
        LEFT JOIN promotion p ON p.id = b.promotion_id
        WHERE b.kind = 'bonus'""")  # fmt: skip
    alone = "SELECT count(*) FROM ledger_entry WHERE kind = 'bonus' AND for_entry_id IS NULL"
    assert rows(treu.database_url, alone)[0][0] == 0
    tiered = {r.merchant_id for r in rows(treu.database_url, "SELECT merchant_id FROM tier")}
    for b in bonuses:
        assert (b.stamp_kind, bool(b.same_holder), bool(b.same_program), bool(b.same_time)) == (
            "stamp", True, True, True,
        )  # fmt: skip
        if b.promotion_id is None:
            assert b.merchant_id in tiered  # a tier's perk
        else:
            assert b.promotion_merchant == b.merchant_id
    kinds = {
        r.kind
        for r in rows(treu.database_url, """
            SELECT DISTINCT p.kind FROM ledger_entry e JOIN promotion p ON p.id = e.promotion_id""")
    }  # fmt: skip
    # The café's happy hour and welcome, the bakery's win-back all gave bonuses in 3 months.
    assert {"multiplier", "welcome", "winback"} <= kinds
    assert any(b.promotion_id is None for b in bonuses)
    # Lower reward levels were redeemed too, each deducting its own stamps.
    levels = rows(treu.database_url, """
        SELECT e.delta, r.stamps FROM ledger_entry e JOIN reward_level r ON r.id = e.reward_id
        WHERE e.kind = 'redemption'""")  # fmt: skip
    assert levels and all(delta == -stamps for delta, stamps in levels)


def test_the_cafe_shows_two_programs_a_ladder_a_tier_and_promotions(
    treu: Treu, demo: dict[str, Any]
) -> None:
    cafe = demo["merchants"][0]
    programs = treu.json("program", "list", "--merchant", cafe["slug"])
    assert [(p["name"], p["stamps_required"], p["status"]) for p in programs] == [
        ("Kaffee", 10, "running"), ("Mittagsmenü", 6, "running"),
    ]  # fmt: skip
    assert [(lv["stamps"], lv["reward"]) for lv in programs[0]["levels"]] == [
        (5, "1 kleiner Kaffee")
    ]
    (tier,) = treu.json("tier", "list", "--merchant", cafe["slug"])["tiers"]
    assert (tier["name"], tier["lifetime_stamps"], tier["bonus_per_visit"]) == ("Stammgast", 30, 1)
    promotions = {p["kind"]: p for p in treu.json("promotion", "list", "--merchant", cafe["slug"])}
    happy = promotions["multiplier"]
    assert (happy["title"], happy["factor"], happy["days"], happy["from"], happy["to"]) == (
        "Happy Hour", 2, ["tue", "wed", "thu"], "14:00", "16:00",
    )  # fmt: skip
    assert promotions["welcome"]["status"] == "running"
    printed = treu("demo", "--if-empty").stdout
    assert "Mittagsmenü: 6 → 1 Dessert gratis" in printed and "Stammgast" in printed

    token = demo["demo_card"]["token"]
    headers = {"Authorization": f"Bearer {cafe['device_secret']}"}
    with treu.api() as client:
        till = client.get("/api/v1/till", headers=headers).json()
        assert [(p["name"], len(p["levels"])) for p in till["programs"]] == [
            ("Kaffee", 1), ("Mittagsmenü", 0),
        ]  # fmt: skip
        # The demo card is a regular of the café: both cards there, the ladder, the status.
        view = client.get(f"/api/v1/cards/{token}").json()["cards"]
        here = [c for c in view if c["merchant"]["slug"] == cafe["slug"]]
        assert {c["program"]["name"] for c in here} == {"Kaffee", "Mittagsmenü"}
        (coffee,) = [c for c in here if c["program"]["name"] == "Kaffee"]
        assert [lv["stamps"] for lv in coffee["levels"]] == [5]
        assert coffee["tier"] == {"name": "Stammgast", "perk": "10 % auf Kuchen"}
        # A new card gets the welcome bonus with its first stamp.
        new = client.post("/api/v1/cards").json()["token"]
        headers["Idempotency-Key"] = uuid.uuid4().hex
        stamped = client.post("/api/v1/stamps", json={"token": new}, headers=headers)
        assert stamped.status_code == 201, stamped.text
        assert {"promotion_id": promotions["welcome"]["id"], "title": "Willkommen",
                "stamps": 1} in stamped.json()["bonus"]  # fmt: skip


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
            if c["merchant"]["slug"] == cafe["slug"] and c["program"]["name"] == "Kaffee"
        ]  # fmt: skip
        headers = {"Authorization": f"Bearer {cafe['device_secret']}",
                   "Idempotency-Key": uuid.uuid4().hex}  # fmt: skip
        response = client.post("/api/v1/stamps", json={"token": token}, headers=headers)
        assert response.status_code == 201, response.text
        stamped = response.json()
        assert stamped["program"]["id"] == before["program"]["id"]  # the café's first program
        # The card is a Stammgast: its perk comes with the stamp (and a happy hour, if now is one).
        bonus = stamped["bonus"]
        assert {"promotion_id": None, "title": "Stammgast", "stamps": 1} in bonus
        assert stamped["stamps"] == before["stamps"] + 1 + sum(b["stamps"] for b in bonus)
