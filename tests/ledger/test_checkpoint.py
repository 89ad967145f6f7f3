"""SQLite: the WAL starts over while the ledger writer commits without a pause, so it stays
small and the writer never has to copy a large WAL back itself (that stalled its commits)."""

import threading
import time
import uuid
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import make_engine
from app.ledger import writer as writer_module
from app.ledger.service import Command
from app.tokens.crypto import find_card
from tests.conftest import PG_URL, ledger_command, make_shop, new_card

FRAME_BYTES = 4096 + 24  # a page and its frame header


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's write-ahead log")
def test_the_wal_starts_over_while_the_writer_commits_without_a_pause(
    app: FastAPI, client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small sizes and frequent rounds, so that the test writes many WALs' worth in a second or
    # two and the WAL's size tells rounds that start it over from rounds that do not.
    monkeypatch.setattr(writer_module, "RESTART_FRAMES", 200)
    monkeypatch.setattr(writer_module, "CHECKPOINT_EVERY_SECONDS", 0.02)
    monkeypatch.setattr(writer_module, "WAL_LIMIT_PAGES", 8_000)
    # Each held round is given the most time from the start: this test writes ~12,000 frames a
    # second, and on a busy CI disk a round's fsyncs outlasted the first limit (12 ms) round after
    # round while the WAL grew past 11,000 frames. How the limit grows on a slow disk is the
    # business of the tests below; this one is about the WAL starting over.
    monkeypatch.setattr(writer_module, "HOLD_SECONDS", writer_module.HOLD_MAX_SECONDS)
    shop = make_shop(app, "Busy Café", cooldown_seconds=0)
    cards = [find_card(app.state.keyring, new_card(client))[1] for _ in range(200)]
    writer = app.state.writer
    assert isinstance(writer, writer_module.LedgerWriter)
    writer.start()  # with its checkpointer
    wal = Path(settings.resolved_database_url.removeprefix("sqlite:///") + "-wal")

    def command(i: int) -> Command:
        card_id = cards[(i * 7919) % len(cards)]
        return ledger_command(app, shop, card_id, idempotency_key=uuid.uuid4().hex)

    batches = 250
    for b in range(batches):
        outcomes = writer.results([command(b * 16 + i) for i in range(16)])
        assert [getattr(o, "status", o) for o in outcomes] == [201] * 16

    written = writer.results([command(0)])[0]
    assert getattr(written, "body", {}).get("stamps", 0) > batches * 16 // len(cards)
    # The WAL file keeps the size it grew to: that is the most it held at once. Without the
    # checkpointer starting it over, the writer's commits grow it to WAL_LIMIT_PAGES again and
    # again (and then copy it all back themselves).
    most = wal.stat().st_size // FRAME_BYTES
    assert most < writer_module.WAL_LIMIT_PAGES // 2, f"the WAL grew to {most} frames"


def test_a_held_round_waits_for_the_transaction_under_way_and_holds_the_next_one() -> None:
    checkpointer = writer_module.Checkpointer(make_engine("sqlite://"))
    inside = threading.Event()
    order: list[str] = []

    def round_() -> None:
        with checkpointer.hold():
            inside.set()
            order.append("round")
            time.sleep(0.05)

    with checkpointer.writing():
        thread = threading.Thread(target=round_)
        thread.start()
        assert not inside.wait(0.1), "the round began while a transaction was under way"
        order.append("transaction")
    assert inside.wait(5)
    with checkpointer.writing():
        order.append("next transaction")
    thread.join()
    assert order == ["transaction", "round", "next transaction"]


def test_a_round_that_hangs_holds_the_writer_no_longer_than_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer_module, "HOLD_SECONDS", 0.1)
    checkpointer = writer_module.Checkpointer(make_engine("sqlite://"))
    inside, release = threading.Event(), threading.Event()

    def stuck_round() -> None:
        with checkpointer.hold():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=stuck_round)
    thread.start()
    assert inside.wait(5)
    try:
        started = time.monotonic()
        with checkpointer.writing():
            pass
        waited = time.monotonic() - started
        assert 0.05 <= waited < 2, waited
        started = time.monotonic()
        with checkpointer.writing():  # the round has had its time: no more waiting
            pass
        assert time.monotonic() - started < 0.05
    finally:
        release.set()
        thread.join()


def test_after_a_round_that_outlasted_its_limit_the_writer_waits_twice_as_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a disk too slow for the first limit the WAL still starts over: the next held round is
    given twice the time (up to the most), and after a round within its time, the first again."""
    monkeypatch.setattr(writer_module, "HOLD_SECONDS", 0.25)
    monkeypatch.setattr(writer_module, "HOLD_MAX_SECONDS", 0.5)
    checkpointer = writer_module.Checkpointer(make_engine("sqlite://"))

    def writer_waits_for(round_seconds: float) -> float:
        """How long the writer waits for a held round that takes round_seconds."""
        inside = threading.Event()

        def round_() -> None:
            with checkpointer.hold():
                inside.set()
                time.sleep(round_seconds)

        thread = threading.Thread(target=round_)
        thread.start()
        assert inside.wait(5)
        started = time.monotonic()
        with checkpointer.writing():
            waited = time.monotonic() - started
        thread.join()
        return waited

    # (Each wait may start a little after the limit began, and end a little after it ran out.)
    assert 0.2 <= writer_waits_for(1) < 0.4  # given 0.25 s, and outlasted it
    assert 0.4 <= writer_waits_for(1) < 0.8  # given 0.5 s, and outlasted that too
    assert 0.4 <= writer_waits_for(1) < 0.8  # 0.5 s is the most
    assert writer_waits_for(0.05) < 0.2  # within its time: the limit is 0.25 s again
    assert 0.2 <= writer_waits_for(1) < 0.4
