"""Concurrent writes: many requests at once through one app, and through two app instances on
one database, as production runs them. Nothing is lost, nothing is doubled, nothing is a 500."""

import random
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from app.db import write_engine
from app.errors import AppError
from app.ledger.models import Balance, LedgerEntry
from app.ledger.service import Outcome, run_command
from app.tokens import crypto
from tests.helpers.api import new_card, stamp
from tests.helpers.cards import card_command, make_cards
from tests.helpers.concurrency import (
    Call,
    assert_no_batch_replayed,
    assert_no_server_error,
    fire,
    run_in_threads,
    slow_writes,
    stamp_call,
)
from tests.helpers.shops import Shop, make_shop

ledger = LedgerEntry.__table__  # type: ignore[attr-defined]
balance = Balance.__table__  # type: ignore[attr-defined]


def redeem_call(shop: Shop, token: str) -> Call:
    headers = {**shop.auth, "Idempotency-Key": uuid.uuid4().hex}
    return Call("/api/v1/redemptions", headers, {"token": token})


@pytest.fixture
def slow_ledger_writes(apps: list[FastAPI]) -> Iterator[None]:
    """Hold each write transaction open a moment after it changed balances (see slow_writes)."""
    with slow_writes(apps, ("INSERT INTO LEDGER_ENTRY",), 0.02):
        yield


def stamps_of(client: TestClient, token: str, shop: Shop) -> int:
    view = client.get(f"/api/v1/cards/{token}").json()["cards"]
    return sum(c["stamps"] for c in view if c["merchant"]["slug"] == shop.slug)


def balances(app: FastAPI, shop: Shop, tokens: list[str]) -> list[int]:
    """The stamps each card has at the shop, read from the balance table."""
    keyring = app.state.keyring
    holders = [
        crypto.holder_for(keyring, crypto.verify_token(keyring, t), shop.merchant_id)
        for t in tokens
    ]
    with app.state.engine.connect() as conn:
        query = select(balance.c.holder, balance.c.stamps).where(
            balance.c.merchant_id == shop.merchant_id
        )
        found = dict(conn.execute(query).tuples().all())
    return [found.get(h, 0) for h in holders]


def entries(engine: Engine, merchant_id: int) -> list[Any]:
    with engine.connect() as conn:
        query = select(ledger).where(ledger.c.merchant_id == merchant_id)
        return list(conn.execute(query))


def test_stamps_on_fifty_cards_at_once(apps: list[FastAPI], client: TestClient) -> None:
    shop = make_shop(apps[0], "Café Sonne")
    tokens = make_cards(apps[0], 50)
    counts = [1 + i % 3 for i in range(50)]
    answers = fire(apps, [stamp_call(shop, t, n) for t, n in zip(tokens, counts, strict=True)])
    assert [a.status for a in answers] == [201] * 50
    assert [a.body["stamps"] for a in answers] == counts
    assert balances(apps[0], shop, tokens) == counts
    assert [stamps_of(client, t, shop) for t in tokens[:3]] == counts[:3]
    written = entries(apps[0].state.engine, shop.merchant_id)
    assert sorted(e.id for e in written) == sorted(a.body["entry_id"] for a in answers)
    assert sum(e.delta for e in written) == sum(counts)


def test_stamps_on_one_card_at_once_are_all_counted(
    apps: list[FastAPI], client: TestClient
) -> None:
    shop = make_shop(apps[0], "Kiosk", cooldown_seconds=0)
    token = new_card(client)
    answers = fire(apps, [stamp_call(shop, token) for _ in range(40)])
    assert [a.status for a in answers] == [201] * 40
    # Each stamp saw the one before it: the answered balances are 1, 2, …, 40 in some order.
    assert sorted(a.body["stamps"] for a in answers) == list(range(1, 41))
    assert stamps_of(client, token, shop) == 40
    written = entries(apps[0].state.engine, shop.merchant_id)
    assert sorted(e.id for e in written) == sorted(a.body["entry_id"] for a in answers)


@pytest.mark.usefixtures("slow_ledger_writes")
def test_interleaved_stamps_on_a_few_cards(
    apps: list[FastAPI], client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Batches of two writers change the same balance rows at once and never deadlock.

    A deadlock would still end well (the batch is replayed one command at a time), but only
    after the database's deadlock timeout, a second or more at every till waiting on it.
    """
    shop = make_shop(apps[0], "Kiosk", cooldown_seconds=0)
    tokens = make_cards(apps[0], 6)
    plan = [(tokens[i % 6], 1 + i % 4) for i in range(60)]
    random.Random(7).shuffle(plan)
    answers = fire(apps, [stamp_call(shop, t, n) for t, n in plan])
    assert [a.status for a in answers] == [201] * 60
    assert balances(apps[0], shop, tokens) == [sum(n for t, n in plan if t == c) for c in tokens]
    written = entries(apps[0].state.engine, shop.merchant_id)
    assert sorted(e.id for e in written) == sorted(a.body["entry_id"] for a in answers)
    assert_no_batch_replayed(caplog)


# With a cooldown the later try is refused by the first one's stamp; without, it meets the first
# one's Idempotency-Key in the ledger's unique index. Within one app neither gets that far.
@pytest.mark.parametrize(
    ("apps", "cooldown"), [(1, 60), (2, 0), (2, 60)], ids=["one-app", "two-apps-0", "two-apps-60"],
    indirect=["apps"],
)  # fmt: skip
@pytest.mark.usefixtures("slow_ledger_writes")
def test_retries_of_one_key_write_once(
    apps: list[FastAPI], client: TestClient, cooldown: int
) -> None:
    shop = make_shop(apps[0], "Café Sonne", cooldown_seconds=cooldown)
    tokens = make_cards(apps[0], 8)
    keys = [f"till-1-{n:04d}" for n in range(8)]
    # Every key is retried six times at once, three times on each app when there are two.
    calls = [
        stamp_call(shop, t, 2, key=k) for t, k in zip(tokens, keys, strict=True) for _ in range(6)
    ]
    answers = fire(apps, calls)
    assert_no_server_error(answers)
    for token, key in zip(tokens, keys, strict=True):
        mine = [
            a for a, c in zip(answers, calls, strict=True) if c.headers["Idempotency-Key"] == key
        ]
        created = [a for a in mine if a.status == 201]
        in_progress = [a for a in mine if a.status == 409]
        assert len(created) + len(in_progress) == 6, [(a.status, a.body) for a in mine]
        assert {a.body["code"] for a in in_progress} <= {"in-flight"}
        assert all(a.headers["retry-after"] for a in in_progress)
        first = [a for a in created if not a.replayed]
        assert len(first) == 1, [(a.status, a.body) for a in mine]
        assert all(a.body == first[0].body for a in created)
        assert stamp(client, shop, token, key=key, count=2).json() == first[0].body
    assert balances(apps[0], shop, tokens) == [2] * 8
    written = entries(apps[0].state.engine, shop.merchant_id)
    assert sorted(e.idempotency_key for e in written) == keys


@pytest.mark.usefixtures("slow_ledger_writes")
def test_concurrent_redemptions_never_overdraw(apps: list[FastAPI], client: TestClient) -> None:
    shop = make_shop(apps[0], "Bäckerei", stamps_required=3, cooldown_seconds=0)
    token = new_card(client)
    assert stamp(client, shop, token, count=10).status_code == 201  # 3 rewards due, 1 spare
    answers = fire(apps, [redeem_call(shop, token) for _ in range(20)])
    statuses = Counter(a.status for a in answers)
    assert statuses == {201: 3, 409: 17}
    assert sorted(a.body["stamps"] for a in answers if a.status == 201) == [1, 4, 7]
    assert {a.body["code"] for a in answers if a.status == 409} == {"no-reward-due"}
    assert stamps_of(client, token, shop) == 1
    kinds = Counter(e.kind for e in entries(apps[0].state.engine, shop.merchant_id))
    assert kinds == {"stamp": 1, "redemption": 3}
    with apps[0].state.engine.connect() as conn:
        row = conn.execute(select(balance).where(balance.c.merchant_id == shop.merchant_id)).one()
    assert (row.stamps, row.lifetime_stamps, row.redeemed) == (1, 10, 3)


# With other stamps on the card the later void still finds enough stamps and meets the first
# one in the unique index; without, the balance refuses it.
@pytest.mark.parametrize(
    ("apps", "other_stamps"), [(1, 0), (2, 0), (2, 5)], ids=["one-app", "two-apps-0", "two-apps-5"],
    indirect=["apps"],
)  # fmt: skip
@pytest.mark.usefixtures("slow_ledger_writes")
def test_concurrent_voids_of_one_entry_undo_it_once(
    apps: list[FastAPI], client: TestClient, other_stamps: int
) -> None:
    shop = make_shop(apps[0], "Kiosk", cooldown_seconds=0)
    token = new_card(client)
    if other_stamps:
        assert stamp(client, shop, token, count=other_stamps).status_code == 201
    entry_id = stamp(client, shop, token, count=3).json()["entry_id"]
    calls = [
        Call(f"/api/v1/entries/{entry_id}/void", {**shop.auth, "Idempotency-Key": f"v-{n}"})
        for n in range(12)
    ]
    answers = fire(apps, calls)
    assert Counter(a.status for a in answers) == {201: 1, 409: 11}
    # The cashier is told what happened: the entry is undone already, not "redeemed".
    assert {a.body["code"] for a in answers if a.status == 409} == {"voided"}
    assert stamps_of(client, token, shop) == other_stamps
    kinds = Counter(e.kind for e in entries(apps[0].state.engine, shop.merchant_id))
    assert kinds == {"stamp": 1 + bool(other_stamps), "void": 1}


# The service on its own: several threads, each with its own connection and transaction, and no
# writer thread in between to serialise them. The conditional statements alone must hold.


def test_run_command_from_many_connections(app: FastAPI, client: TestClient) -> None:
    shop = make_shop(app, "Kiosk", stamps_required=2, cooldown_seconds=0)
    token = new_card(client)
    stamps = [card_command(app, shop, token, "stamp", count=1) for _ in range(8)]
    results = run_in_threads(app.state.engine, stamps)
    assert sorted(r.body["stamps"] for r in results if isinstance(r, Outcome)) == list(range(1, 9))

    redemptions = [card_command(app, shop, token, "redeem") for _ in range(8)]
    results = run_in_threads(app.state.engine, redemptions)
    done = [r for r in results if isinstance(r, Outcome)]
    refused = [r for r in results if isinstance(r, AppError)]
    assert (len(done), len(refused)) == (4, 4)
    assert {r.status for r in refused} == {409}
    assert stamps_of(client, token, shop) == 0


def test_run_command_with_one_key_from_many_connections(app: FastAPI, client: TestClient) -> None:
    """One write wins; the others replay it, or meet the unique key and replay on a second try."""
    shop = make_shop(app, "Kiosk", cooldown_seconds=60)
    token = new_card(client)
    command = card_command(app, shop, token, "stamp", count=3, idempotency_key="k-1")
    results = run_in_threads(app.state.engine, [command] * 8)
    firsts = [r for r in results if isinstance(r, Outcome) and not r.replayed]
    assert len(firsts) == 1
    for result in results:
        if isinstance(result, IntegrityError):
            with write_engine(app.state.engine).begin() as conn:
                result = run_command(conn, command)
        assert isinstance(result, Outcome), result
        assert (result.status, result.body) == (201, firsts[0].body)
    assert stamps_of(client, token, shop) == 3
