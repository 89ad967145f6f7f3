"""Bonuses under concurrent writes: many tills at once, through one app and through two app
instances on one database (tests/ledger/test_concurrency.py does the same for plain stamps).

A budget is never overspent, however many cards are stamped at once; an undo gives back exactly
what its stamp's bonuses took; the ledger adds up to every balance; and on PostgreSQL no batch
deadlocks (the writer would replay it one command at a time and log it).
"""

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from app.ledger.models import Balance, LedgerEntry
from app.ledger.service import Outcome
from app.loyalty import service as loyalty
from app.loyalty.models import Promotion
from tests.helpers.api import stamp
from tests.helpers.cards import card_command, make_cards
from tests.helpers.clock import Clock
from tests.helpers.concurrency import (
    Call,
    assert_no_batch_replayed,
    assert_no_server_error,
    fire,
    run_in_threads,
    slow_writes,
    stamp_call,
)
from tests.helpers.loyalty import add_promotion, add_tier, as_owner
from tests.helpers.rollups import assert_consistent
from tests.helpers.shops import Shop, make_shop

ledger = LedgerEntry.__table__  # type: ignore[attr-defined]
balance = Balance.__table__  # type: ignore[attr-defined]
promotion_table = Promotion.__table__  # type: ignore[attr-defined]


def void_call(shop: Shop, entry_id: str) -> Call:
    headers = {**shop.auth, "Idempotency-Key": uuid.uuid4().hex}
    return Call(f"/api/v1/entries/{entry_id}/void", headers)


@pytest.fixture
def slow_ledger_writes(apps: list[FastAPI]) -> Iterator[None]:
    """Hold each write transaction open a moment after it changed balances and budgets, so two
    instances really meet on the same rows."""
    with slow_writes(apps, ("INSERT INTO LEDGER_ENTRY", "UPDATE PROMOTION"), 0.01):
        yield


def spent(engine: Engine, promotion_id: int | None) -> int:
    with engine.connect() as conn:
        query = select(promotion_table.c.spent).where(promotion_table.c.id == promotion_id)
        return int(conn.execute(query).scalar_one())


def bonuses_kept(engine: Engine, promotion_id: int | None) -> int:
    """The bonus stamps of a promotion in the ledger that were not undone."""
    with engine.connect() as conn:
        entries = list(conn.execute(select(ledger)))
    undone = {e.voids_entry_id for e in entries if e.kind == "void"}
    return sum(
        e.delta
        for e in entries
        if e.kind == "bonus" and e.promotion_id == promotion_id and e.id not in undone
    )


def assert_books_balance(engine: Engine) -> None:
    """Every balance is the sum of its ledger entries, and every entry has its balance."""
    with engine.connect() as conn:
        balances = {tuple(b[:3]): b.stamps for b in conn.execute(select(balance))}
        sums: Counter[tuple[Any, ...]] = Counter()
        for e in conn.execute(select(ledger)):
            sums[(e.merchant_id, e.program_id, e.holder)] += e.delta
    assert sums.keys() <= balances.keys()
    assert {k: v for k, v in balances.items()} == {k: sums.get(k, 0) for k in balances}


@pytest.mark.usefixtures("slow_ledger_writes")
def test_a_budget_is_never_overspent_by_stamps_at_once(
    apps: list[FastAPI], client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    shop = make_shop(apps[0], "Café Ansturm", cooldown_seconds=0)
    pairs = add_promotion(apps[0], shop, "campaign", title="Paare", stamps=2, budget=7)
    firsts = add_promotion(apps[0], shop, "welcome", title="Neu", stamps=1, budget=5)
    tokens = make_cards(apps[0], 40)
    answers = fire(apps, [stamp_call(shop, t) for t in tokens])
    assert [a.status for a in answers] == [201] * 40
    given = Counter(b["title"] for a in answers for b in a.body["bonus"])
    # Three pairs fit into 7, a fourth would make 8; five single stamps fit into 5 exactly.
    assert given == {"Paare": 3, "Neu": 5}
    engine = apps[0].state.engine
    assert (spent(engine, pairs.id), spent(engine, firsts.id)) == (6, 5)
    assert (bonuses_kept(engine, pairs.id), bonuses_kept(engine, firsts.id)) == (6, 5)
    # Each answer's stamps are its card's: 1, plus the bonuses it got.
    assert sorted(a.body["stamps"] for a in answers) == sorted(
        1 + sum(b["stamps"] for b in a.body["bonus"]) for a in answers
    )
    assert_books_balance(engine)
    assert_consistent(apps[0])
    assert_no_batch_replayed(caplog)


def test_a_budget_holds_from_many_connections(app: FastAPI, client: TestClient) -> None:
    """The conditional UPDATE alone keeps the budget, whatever order the transactions commit."""
    shop = make_shop(app, "Kiosk", cooldown_seconds=0)
    promotion = add_promotion(app, shop, "campaign", stamps=3, budget=10)
    tokens = make_cards(app, 12)
    stamps = [card_command(app, shop, t, "stamp") for t in tokens]
    results = run_in_threads(app.state.engine, stamps)
    assert all(isinstance(r, Outcome) for r in results), results
    given = [b["stamps"] for r in results if isinstance(r, Outcome) for b in r.body["bonus"]]
    assert given == [3, 3, 3]
    assert spent(app.state.engine, promotion.id) == 9
    assert_books_balance(app.state.engine)


@pytest.mark.usefixtures("slow_ledger_writes")
def test_stamps_and_undos_at_once_keep_budgets_and_balances(
    apps: list[FastAPI], client: TestClient, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Undos of stamps with bonuses (budgets given back) while other stamps spend the same
    budgets, on the same cards and on others."""
    shop = make_shop(apps[0], "Café Trubel", cooldown_seconds=0)
    pairs = add_promotion(apps[0], shop, "campaign", title="Paare", stamps=2, budget=30)
    double = add_promotion(apps[0], shop, "multiplier", title="Doppelt", budget=40)
    add_tier(apps[0], shop, "Stammgast", 2, bonus_per_visit=1)
    tokens = make_cards(apps[0], 12)
    first = fire(apps, [stamp_call(shop, t, 1 + i % 3) for i, t in enumerate(tokens)])
    assert [a.status for a in first] == [201] * 12
    clock.advance(30)
    calls = [void_call(shop, a.body["entry_id"]) for a in first[::2]]
    calls += [stamp_call(shop, t, 2) for t in tokens]
    answers = fire(apps, calls)
    assert_no_server_error(answers)
    assert [a.status for a in answers] == [201] * len(calls), [a.body for a in answers]
    engine = apps[0].state.engine
    for promotion in (pairs, double):
        assert spent(engine, promotion.id) == bonuses_kept(engine, promotion.id)
        assert spent(engine, promotion.id) <= promotion.budget
    # Every undo took back its stamp with all its bonuses, as its answer said.
    undone = {
        a.body["voids_entry_id"]: a.body["delta"] for a in answers if a.body["kind"] == "void"
    }
    for a in first[::2]:
        total = a.body["delta"] + sum(b["stamps"] for b in a.body["bonus"])
        assert undone[a.body["entry_id"]] == -total
    assert_books_balance(engine)
    assert_consistent(apps[0])
    assert_no_batch_replayed(caplog)


@pytest.mark.usefixtures("slow_ledger_writes")
def test_undos_of_an_ended_promotions_bonuses_never_deadlock(
    apps: list[FastAPI], client: TestClient, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A budget given back after its promotion ended is still taken in the one lock order."""
    shop = make_shop(apps[0], "Café Ende", cooldown_seconds=0)
    promotion = add_promotion(apps[0], shop, "campaign", stamps=1, budget=100)
    tokens = make_cards(apps[0], 5)  # an odd number: each card's undos go to both apps
    entries: list[tuple[str, str]] = []
    for _ in range(4):
        for token in tokens:
            answer = stamp(client, shop, token)
            assert answer.status_code == 201
            entries.append((token, answer.json()["entry_id"]))
        clock.advance(1)
    promotion_id, now = promotion.id, clock.now
    assert promotion_id is not None
    as_owner(
        apps[0], shop,
        lambda s, m: loyalty.end_promotion(session=s, merchant=m, promotion_id=promotion_id,
                                           now=now),
    )  # fmt: skip
    answers = fire(apps, [void_call(shop, entry_id) for _, entry_id in entries])
    assert [a.status for a in answers] == [201] * len(entries), [a.body for a in answers]
    engine = apps[0].state.engine
    assert spent(engine, promotion.id) == bonuses_kept(engine, promotion.id) == 0
    assert_books_balance(engine)
    assert_no_batch_replayed(caplog)
