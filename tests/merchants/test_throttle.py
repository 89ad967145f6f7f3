"""Login throttling's parts: the in-memory failures per account and client, the bound on
password checks at once, and the purge of the stored per-account counts."""

import threading
from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.db import write_engine
from app.merchants import throttle
from app.merchants.models import LoginThrottle
from tests.helpers.clock import Clock
from tests.helpers.pages import log_in
from tests.helpers.shops import Shop


def test_failures_are_counted_per_account_and_client(clock: Clock) -> None:
    failed = throttle.FailedLogins()
    now = clock()
    for _ in range(4):
        assert failed.record(account="a", client="x", now=now, free=5) == 0
    assert failed.record(account="a", client="x", now=now, free=5) == 30
    assert failed.wait(account="a", client="x", now=now) == 30
    assert failed.wait(account="a", client="y", now=now) == 0  # another client
    assert failed.wait(account="b", client="x", now=now) == 0  # another account
    assert failed.wait(account="a", client="x", now=now + timedelta(seconds=31)) == 0
    failed.forget(account="a", client="x")
    assert failed.record(account="a", client="x", now=now, free=5) == 0


def test_failures_in_memory_are_bounded_and_forgotten_after_a_day(clock: Clock) -> None:
    failed = throttle.FailedLogins(max_remembered=3)
    now = clock()
    for n in range(5):
        failed.record(account=f"a{n}", client="x", now=now, free=1)
    assert len(failed) == 3  # the least recent went first
    assert failed.wait(account="a0", client="x", now=now) == 0
    assert failed.wait(account="a4", client="x", now=now) == 30
    later = now + throttle.FAILURE_MEMORY + timedelta(seconds=1)
    failed.record(account="new", client="x", now=later, free=5)
    assert len(failed) == 1


def test_at_most_so_many_password_checks_run_at_once() -> None:
    checks = throttle.PasswordChecks(2)
    running, most = 0, 0
    lock = threading.Lock()
    refused = []
    go = threading.Barrier(8)

    def login() -> None:
        nonlocal running, most
        go.wait()
        with checks.slot() as free:
            if not free:
                refused.append(1)
                return
            with lock:
                running += 1
                most = max(most, running)
            threading.Event().wait(0.2)  # an Argon2id run
            with lock:
                running -= 1

    threads = [threading.Thread(target=login) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 2 and len(refused) >= 1
    with checks.slot() as free:  # every slot was given back
        assert free


def test_stored_counts_are_purged_a_day_after_their_last_failure(
    app: FastAPI, client: TestClient, shop: Shop, clock: Clock
) -> None:
    log_in(client, "nobody@example.org", "guess")  # an address that is no owner's
    clock.advance(12 * 3600)
    log_in(client, shop.owner_email, "guess")
    engine = app.state.engine
    with Session(write_engine(engine)) as session:
        assert throttle.purge_login_throttle(session=session, now=clock()) == 0
        session.commit()
    clock.advance(12 * 3600 + 1)
    with Session(write_engine(engine)) as session:
        assert throttle.purge_login_throttle(session=session, now=clock()) == 1
        session.commit()
    with Session(engine) as session:
        left = session.exec(select(LoginThrottle)).all()
    assert len(left) == 1 and left[0].last_failure_at == clock() - timedelta(seconds=12 * 3600 + 1)
    clock.advance(12 * 3600)
    with Session(write_engine(engine)) as session:
        assert throttle.purge_login_throttle(session=session, now=clock()) == 1
        session.commit()
        assert session.exec(select(LoginThrottle)).all() == []
