"""The rollups the ledger writer keeps equal the ones recomputed from the ledger.

Random stamp / redeem / undo sequences go through the real API (one command per batch) and
through hand-made batches of many commands (one transaction), across local midnights and months;
afterwards every rollup table must equal what rebuild_rollups() computes from the ledger.
Runs on SQLite, and on PostgreSQL with TREU_TEST_DATABASE_URL.
"""

import contextlib
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select
from sqlmodel import Session

from app.analytics import service
from app.analytics.rollups import day_number
from app.db import write_engine
from app.errors import AppError
from app.ledger.service import Batch, Command
from app.tokens import crypto
from app.tokens.service import create_card
from tests.conftest import Clock, Shop, make_shop, new_card, redeem, stamp, void

# Clock steps: same minute, same day, across a night, a week, a month and a quarter.
STEPS = (0, 1, 61, 600, 3 * 3600, 11 * 3600, 86_400, 7 * 86_400, 33 * 86_400, 95 * 86_400)


def stored(conn: Connection) -> dict[str, set[tuple[Any, ...]]]:
    """Every rollup row, counts that add up to zero left out."""
    tables: dict[str, set[tuple[Any, ...]]] = {}
    for table in service.ROLLUP_TABLES:
        rows = conn.execute(select(table)).all()
        tables[table.name] = {tuple(r) for r in rows if any(r[len(table.primary_key) :])}
    return tables


def recomputed(conn: Connection) -> dict[str, set[tuple[Any, ...]]]:
    outs, cards = service.recompute(conn)
    rows = {**service.rollup_rows(outs), service.card_table.name: cards}
    return {
        table.name: {tuple(row[c.name] for c in table.columns) for row in rows[table.name]}
        for table in service.ROLLUP_TABLES
    }


def assert_consistent(app: FastAPI) -> dict[str, set[tuple[Any, ...]]]:
    with app.state.engine.connect() as conn:
        kept, expected = stored(conn), recomputed(conn)
    for name in expected:
        assert kept[name] == expected[name], name
    return kept


def test_random_api_sequences_match_the_rebuild(
    app: FastAPI, client: TestClient, clock: Clock
) -> None:
    rng = random.Random(5)
    shop = make_shop(app, "Café Zufall", stamps_required=3, cooldown_seconds=0)
    second = _second_device(app, shop)
    cards = [new_card(client) for _ in range(6)]
    recent: list[str] = []
    done = {"stamp": 0, "redemption": 0, "void": 0}
    for _ in range(160):
        token = rng.choice(cards)
        roll = rng.random()
        device = shop if rng.random() < 0.6 else second
        # An undo comes soon after the entry (the undo window is ten minutes).
        clock.advance(rng.choice(STEPS[:3] if roll >= 0.75 else STEPS))
        if roll < 0.55:
            response = stamp(client, device, token, count=rng.randint(1, 3))
        elif roll < 0.75:
            response = redeem(client, device, token)
        elif recent:
            response = void(client, device, rng.choice(recent[-3:]))
        else:
            continue
        if response.status_code == 201:
            body = response.json()
            done[body["kind"]] += 1
            recent.append(body["entry_id"])
    assert min(done.values()) >= 5, done  # every kind was exercised
    kept = assert_consistent(app)
    assert kept["analytics_visit"] and kept["analytics_cohort"] and kept["analytics_holding"]


def test_one_batch_of_many_commands_matches_the_rebuild(app: FastAPI, clock: Clock) -> None:
    """Many commands for the same cards in one transaction: one upsert per key must add up."""
    rng = random.Random(11)
    shop = make_shop(app, "Café Stapel", stamps_required=2, cooldown_seconds=0)
    second = _second_device(app, shop)
    keyring = app.state.keyring
    with Session(app.state.engine) as session:
        card_ids = [
            create_card(session=session, keyring=keyring, now=clock()).card_id for _ in range(4)
        ]
        session.commit()
    engine = write_engine(app.state.engine)
    entries: list[str] = []
    for _ in range(12):
        commands = []
        for _ in range(rng.randint(1, 25)):
            clock.advance(rng.choice(STEPS[:6]))
            card_id = rng.choice(card_ids)
            op = rng.choice(["stamp", "stamp", "redeem", "void"])
            commands.append(
                Command(
                    op=op,  # type: ignore[arg-type]
                    merchant_id=shop.merchant_id,
                    device_id=rng.choice([shop.device_id, second.device_id]),
                    now=clock(),
                    holder=crypto.holder_for(keyring, card_id, shop.merchant_id),
                    card_ref=crypto.card_ref(keyring, card_id),
                    count=rng.randint(1, 2),
                    entry_id=rng.choice(entries[-6:]) if op == "void" and entries else None,
                    idempotency_key=uuid.uuid4().hex,
                )
            )
        with engine.begin() as conn:
            batch = Batch(conn, commands)
            for command in commands:
                # A refusal (cooldown, nothing to redeem, too late to undo) writes nothing.
                with contextlib.suppress(AppError):
                    entries.append(batch.run(command).body["entry_id"])
            batch.flush()
        clock.advance(rng.choice(STEPS))
    assert len(entries) > 40
    assert_consistent(app)


def test_rebuild_replaces_rollups_with_the_ledger_truth(
    app: FastAPI, client: TestClient, shop: Shop, other_shop: Shop
) -> None:
    token = new_card(client)
    for kept_shop in (shop, other_shop):
        assert stamp(client, kept_shop, token, count=2).status_code == 201
    before = assert_consistent(app)
    with write_engine(app.state.engine).begin() as conn:
        conn.execute(service.visit_table.delete())
        service.rebuild_rollups(conn, merchant_id=shop.merchant_id)
        # Only the shop's rows came back: the other merchant is untouched by its rebuild.
        shops = {row[0] for row in conn.execute(select(service.visit_table.c.merchant_id))}
        assert shops == {shop.merchant_id}
        service.rebuild_rollups(conn)
    assert assert_consistent(app) == before


def test_daily_rows_count_visits_new_cards_and_undo(
    app: FastAPI, client: TestClient, shop: Shop, clock: Clock
) -> None:
    # 22:30 UTC on 2 Nov is 23:30 in Vienna; an hour later it is already 3 Nov there.
    clock.now = datetime(2026, 11, 2, 22, 30, tzinfo=UTC)
    first, second = new_card(client), new_card(client)
    assert stamp(client, shop, first, count=2).status_code == 201
    clock.advance(3600)
    assert stamp(client, shop, first).status_code == 201
    entry = stamp(client, shop, second, count=3).json()["entry_id"]
    assert void(client, shop, entry).status_code == 201
    with Session(app.state.engine) as session:
        rows = service.daily_rows(
            session=session,
            merchant_id=shop.merchant_id,
            start=datetime(2026, 11, 1).date(),
            end=datetime(2026, 11, 30).date(),
        )
    assert [(r["day"].isoformat(), r["visits"], r["new_cards"], r["stamps"], r["voids"])
            for r in rows] == [("2026-11-02", 1, 1, 2, 0), ("2026-11-03", 1, 0, 1, 1)]  # fmt: skip
    assert day_number(rows[0]["day"]) + 1 == day_number(rows[1]["day"])


def _second_device(app: FastAPI, shop: Shop) -> Shop:
    from app.merchants import service as merchants
    from app.merchants.models import Merchant

    with Session(app.state.engine, expire_on_commit=False) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        device, secret = merchants.create_device(
            session=session, merchant=merchant, now=app.state.clock()
        )
        session.commit()
        assert device.id is not None
    return Shop(shop.merchant_id, shop.slug, shop.program_id, device.id, secret,
                shop.owner_email, shop.owner_password)  # fmt: skip
