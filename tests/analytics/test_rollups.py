"""The rollups the ledger writer keeps equal the ones recomputed from the ledger.

Random stamp / redeem / undo sequences go through the real API (one command per batch) and
through hand-made batches of many commands (one transaction), across local midnights and months;
afterwards every rollup table must equal what rebuild_rollups() computes from the ledger.
Runs on SQLite, and on PostgreSQL with TREU_TEST_DATABASE_URL.
"""

import contextlib
import random
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import Session

from alembic import command
from app.analytics import models, service
from app.analytics.rollups import (
    ACTIVITY_FIELDS,
    CardState,
    CardTally,
    Entry,
    Rollups,
    day_number,
    decode_recent,
    in_order,
    local_slot,
    replay,
    weekday_of,
)
from app.db import write_engine
from app.errors import AppError
from app.ledger import projections
from app.ledger.service import Batch, Command
from app.migrations import alembic_config
from app.tokens import crypto
from app.tokens.service import create_card
from tests.analytics.reference import UTC_ZONE, Event, ledger
from tests.helpers.api import new_card, redeem, stamp, void
from tests.helpers.clock import Clock
from tests.helpers.rollups import assert_consistent, recomputed, stored
from tests.helpers.shops import Shop, make_shop

# Clock steps: same minute, same day, across a night, a week, a month and a quarter.
STEPS = (0, 1, 61, 600, 3 * 3600, 11 * 3600, 86_400, 7 * 86_400, 33 * 86_400, 95 * 86_400)


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
    assert kept["analytics_hour_visit"] and kept["analytics_weekday_visit"]
    # Both tills, and cards seen again at one after a gap.
    devices = kept["analytics_device_card"]
    assert {row[2] for row in devices} == {shop.device_id, second.device_id}
    assert any(row[3] > 0 for row in devices)


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
        conn.execute(models.visit_table.delete())
        projections.rebuild_rollups(conn, merchant_id=shop.merchant_id)
        # Only the shop's rows came back: the other merchant is untouched by its rebuild.
        shops = {row[0] for row in conn.execute(select(models.visit_table.c.merchant_id))}
        assert shops == {shop.merchant_id}
        projections.rebuild_rollups(conn)
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


# --- distinct cards per weekday, hour and device ---------------------------------------------

CHAINED = [models.COUNTED[name][0] for name in models.CHAINED]


def test_a_deleted_card_leaves_every_rollup(
    app: FastAPI, client: TestClient, shop: Shop, clock: Clock
) -> None:
    second = _second_device(app, shop)
    leaving, staying = new_card(client), new_card(client)
    for days in (0, 1, 7, 14, 15):
        clock.now = datetime(2026, 11, 2, 8, 0, tzinfo=UTC) + timedelta(days=days)
        for token in (leaving, staying):
            assert stamp(client, shop, token).status_code == 201
        clock.advance(3600)
        assert stamp(client, second, leaving).status_code == 201
    assert client.delete(f"/api/v1/cards/{leaving}").status_code == 204
    with app.state.engine.connect() as conn:
        kept, expected = stored(conn), recomputed(conn)
        # Every table as if the card had never been there; not a row left at zero either: it
        # would mark where the card had been.
        assert kept == expected
        for name, (table, _, counted) in models.COUNTED.items():
            if name != "holdings":  # a count of cards holding n stamps passes 0 as cards move
                assert conn.execute(select(table).where(table.c[counted] <= 0)).all() == []
        a = models.activity_table.c
        empty = select(models.activity_table).where(*(a[f] == 0 for f in ACTIVITY_FIELDS))
        assert conn.execute(empty).all() == []
        # The second till saw only the deleted card: nothing about it is left.
        for table in (models.device_table, models.activity_table):
            left = select(table.c.device_id).where(table.c.device_id == second.device_id)
            assert conn.execute(left).all() == [], table.name


def test_the_migration_rolls_up_existing_ledgers(
    app: FastAPI, client: TestClient, shop: Shop, clock: Clock, database_url: str
) -> None:
    second = _second_device(app, shop)
    tokens = [new_card(client) for _ in range(3)]
    for n in range(12):
        clock.advance(5 * 3600 if n % 3 else 86_400 + 3600)
        for token in tokens[: 1 + n % 3]:
            assert stamp(client, shop if n % 2 else second, token).status_code == 201
    app.state.engine.dispose()
    config = alembic_config(database_url)
    command.downgrade(config, "0006_feedback")
    command.upgrade(config, "head")
    with app.state.engine.connect() as conn:
        kept, expected = stored(conn), recomputed(conn)
    for name in [*(t.name for t in CHAINED), "analytics_card"]:
        assert kept[name] == expected[name], name
        assert kept[name], name


def distinct_by_brute_force(
    events: list[Event], lo: int, hi: int
) -> dict[str, dict[Any, set[str]]]:
    """Cards per weekday-hour cell, weekday and device in [lo, hi), from the plain definitions:
    a visit is a card's first stamp (not undone) of a day; a device counts every stamp there."""
    found: dict[str, dict[Any, set[str]]] = {n: defaultdict(set) for n in models.CHAINED}
    for card, history in ledger(events).items():
        undone = {e.voids_entry_id for e in history if e.kind == "void"}
        days: set[int] = set()
        for e in in_order(history):
            if e.kind != "stamp" or e.id in undone:
                continue
            day, hour = local_slot(e.created_at, UTC_ZONE)
            if not lo <= day < hi:
                continue
            found["devices"][e.device_id or 0].add(card)
            if day not in days:
                days.add(day)
                found["hours"][(weekday_of(day), hour)].add(card)
                found["weekdays"][weekday_of(day)].add(card)
    return found


def distinct_by_gaps(total: Rollups, lo: int, hi: int) -> dict[str, dict[Any, int]]:
    """The same counts as the dashboard reads them from the rollups (as numbers)."""
    counts: dict[str, dict[Any, int]] = {n: defaultdict(int) for n in models.CHAINED}
    for name in models.CHAINED:
        for key, n in getattr(total, name).items():
            day, gap = key[0], key[-1]
            if lo <= day < hi and (gap == 0 or day - gap < lo):
                weekday = weekday_of(day)
                cell = {"hours": (weekday, key[1]), "weekdays": weekday, "devices": key[1]}
                counts[name][cell[name]] += n
    return {name: {k: v for k, v in c.items() if v} for name, c in counts.items()}


START = date(2026, 3, 2)
events_strategy = st.lists(
    st.tuples(
        st.sampled_from("abcd"),  # card
        st.integers(0, 40),  # day
        st.sampled_from((8, 9, 13)),  # hour
        st.integers(0, 59),  # minute
        st.sampled_from((1, 2, 0)),  # device (0: none)
        st.booleans(),  # undo the card's latest stamp instead
    ),
    max_size=40,
)


def as_events(raw: list[tuple[str, int, int, int, int, bool]]) -> list[Event]:
    events: list[Event] = []
    latest: dict[str, int] = {}
    for card, day, hour, minute, device, undo in raw:
        at = START + timedelta(days=day)
        if undo and card in latest:
            events.append(Event(card, at, hour, "void", device=device, voids=latest.pop(card)))
        else:
            latest[card] = len(events)
            events.append(Event(card, at, hour, device=device, minute=minute))
    return events


@settings(max_examples=150, deadline=None)
@given(events_strategy, st.integers(0, 40), st.integers(1, 41))
def test_gaps_count_the_distinct_cards_of_any_window(
    raw: list[tuple[str, int, int, int, int, bool]], lo: int, length: int
) -> None:
    events = as_events(raw)
    total = Rollups()
    for history in ledger(events).values():
        share, _ = replay(history, required={1: 3}, tz=UTC_ZONE)
        total.merge(share)
    a = day_number(START) + lo
    expected = distinct_by_brute_force(events, a, a + length)
    got = distinct_by_gaps(total, a, a + length)
    for name in models.CHAINED:
        assert got[name] == {k: len(v) for k, v in expected[name].items()}, name
    # The hour counts hold every visit, like the activity counts.
    by_hour: dict[tuple[int, int], int] = defaultdict(int)
    for (day, hour, _), n in total.hours.items():
        by_hour[(day, hour)] += n
    by_activity: dict[tuple[int, int], int] = defaultdict(int)
    for (day, hour, _), counts in total.activity.items():
        by_activity[(day, hour)] += counts[2]
    assert {k: v for k, v in by_hour.items() if v} == {k: v for k, v in by_activity.items() if v}


@settings(max_examples=150, deadline=None)
@given(events_strategy.map(lambda raw: [(*r[:5], False) for r in raw]), st.data())
def test_adding_batch_by_batch_through_the_stored_state_equals_the_replay(
    raw: list[tuple[str, int, int, int, int, bool]], data: st.DataObject
) -> None:
    """What the writer does: extend each card from its stored row (recent as JSON), batch by
    batch, in time order."""
    for history in ledger(as_events(raw)).values():
        ordered = in_order(history)
        cuts = sorted(data.draw(st.sets(st.integers(1, max(len(ordered) - 1, 1)), max_size=4)))
        expected, final = replay(history, required={1: 3}, tz=UTC_ZONE)
        out, state, lifetime = Rollups(), CardState(), dict[int, int]()
        for lo, hi in zip([0, *cuts], [*cuts, len(ordered)], strict=True):
            stored_as = (state.first_day, state.second_day, state.last_day, state.visits)
            state = CardState(*stored_as, *decode_recent(state.recent()), state.steps)
            tally = CardTally(state=state, lifetime=lifetime, required={1: 3}, tz=UTC_ZONE, out=out)
            for entry in ordered[lo:hi]:
                tally.add(entry)
        assert out.nonzero() == expected.nonzero()
        assert state == final and state.recent() == final.recent()


def test_an_entry_is_read_at_its_local_slot() -> None:
    entry = Entry("x", 1, "stamp", 1, 2, datetime(2026, 3, 2, 8, 30, tzinfo=UTC))
    assert local_slot(entry.created_at, UTC_ZONE) == (day_number(date(2026, 3, 2)), 8)
    assert weekday_of(day_number(date(2026, 3, 2))) == 0  # a Monday
