"""The write path's cost stays flat as the ledger grows: no statement it runs scans a table that
grows with cards or entries (SQLite's query plans; PostgreSQL's planner scans small tables on
purpose, so its plans say nothing at test sizes)."""

import re
import sqlite3
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event

from tests.helpers.api import new_card, redeem, stamp, void
from tests.helpers.clock import Clock
from tests.helpers.database import PG_URL
from tests.helpers.loyalty import add_program, add_promotion, add_tier, set_levels
from tests.helpers.shops import Shop, make_shop

# Tables whose size grows with cards, entries or visits (merchants, programs, devices do not).
_TABLES = r"(ledger_entry|balance|idempotency_record|card|claim_code|analytics_\w+)"
# A scan, or a search by merchant (and program) alone: both read a share of the whole table.
_BROAD = r"(merchant_id|program_id)=\?"
GROWING = re.compile(rf"\bSCAN {_TABLES}\b|\bSEARCH {_TABLES} USING .*\({_BROAD}( AND {_BROAD})*\)")


@pytest.fixture
def traced(app: FastAPI) -> list[str]:
    """Every SQL statement run on the app's connections, with its values filled in."""
    statements: list[str] = []

    @event.listens_for(app.state.engine, "connect")
    def _trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    return statements


def assert_flat(statements: list[str], settings: Any) -> None:
    """No write-path statement traced scans a growing table (SQLite's plan for each)."""
    writes = [s for s in statements if re.match(r"\s*(SELECT|UPDATE|DELETE|INSERT)", s, re.I)]
    assert any("INSERT INTO ledger_entry" in s for s in writes)
    database = settings.resolved_database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as plain:
        for sql in writes:
            plan = "\n".join(row[3] for row in plain.execute("EXPLAIN QUERY PLAN " + sql))
            assert not GROWING.search(plan), f"{sql}\n{plan}"


@pytest.mark.skipif(bool(PG_URL), reason="query plans are checked on SQLite")
def test_stamp_redeem_and_undo_never_scan_a_growing_table(
    traced: list[str], client: TestClient, app: FastAPI, settings: Any
) -> None:
    # `traced` comes first: its listener is in place before the app's threads connect.
    shop: Shop = make_shop(app, "Flat Café", cooldown_seconds=0, stamps_required=2)
    cards = [new_card(client) for _ in range(3)]
    traced.clear()
    for token in cards:
        first = stamp(client, shop, token, key=f"k-{token[-12:]}").json()
        assert "entry_id" in first, first
        stamp(client, shop, token, count=2)
        stamp(client, shop, token, key=f"k-{token[-12:]}")  # an idempotent replay
        redeem(client, shop, token)
        void(client, shop, first["entry_id"])
    assert_flat(traced, settings)


@pytest.mark.skipif(bool(PG_URL), reason="query plans are checked on SQLite")
def test_a_stamp_with_every_lever_active_never_scans_a_growing_table(
    traced: list[str], client: TestClient, app: FastAPI, settings: Any, clock: Clock
) -> None:
    """Promotions (a budget among them), a tier's perk, a second program, reward levels and
    expiry: every statement they add to stamp, redeem and undo is a keyed lookup."""
    shop: Shop = make_shop(app, "Flat Levers", cooldown_seconds=0, stamps_required=4)
    lunch = add_program(app, shop, "Mittag", 4, "1 Dessert", expire_months=1)
    level = set_levels(app, shop, [(2, "Keks")])[0]
    add_promotion(app, shop, "multiplier", title="Happy Hour")
    add_promotion(app, shop, "welcome", stamps=1)
    add_promotion(app, shop, "campaign", stamps=1, budget=1000)
    add_promotion(app, shop, "winback", stamps=1, away_days=20)
    add_tier(app, shop, "Stammgast", 3, bonus_per_visit=1)
    cards = [new_card(client) for _ in range(3)]
    for token in cards:
        assert stamp(client, shop, token, program_id=lunch.id).status_code == 201
    clock.advance(40 * 86_400)  # a month and more: the lunch stamps expire at the next visit
    traced.clear()
    for token in cards:
        # Back at the shop after 40 days, at lunch first (its old stamps expire), then coffee.
        key = f"k-{token[-12:]}"
        first = stamp(client, shop, token, key=key, program_id=lunch.id).json()
        assert first["bonus"], first
        again = stamp(client, shop, token, count=2).json()
        assert again["bonus"], again
        stamp(client, shop, token, key=key, program_id=lunch.id)  # an idempotent replay
        assert redeem(client, shop, token, reward_id=level.id).status_code == 201
        assert void(client, shop, first["entry_id"]).status_code == 201
    assert any("UPDATE promotion" in s for s in traced)  # the budget was spent and given back
    assert any("'expiry'" in s for s in traced)
    assert_flat(traced, settings)
