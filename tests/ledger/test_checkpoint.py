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
from tests.helpers.api import new_card
from tests.helpers.database import PG_URL
from tests.helpers.shops import ledger_command, make_shop

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


class HeldRound:
    """A checkpoint round on a thread of its own that holds the writer for as long as it runs.

    What a test reads is what the round and the writer did, not how long a wait took: a shared
    machine that stops a thread for a while must not make these tests fail.
    """

    def __init__(self, checkpointer: writer_module.Checkpointer) -> None:
        self.checkpointer = checkpointer
        self.limit = checkpointer._hold_limit  # what hold() gives this round
        self.deadline = 0.0
        self.inside, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with self.checkpointer.hold():
            self.deadline = self.checkpointer._held_until
            self.inside.set()
            self.release.wait(10)

    def __enter__(self) -> "HeldRound":
        self.thread.start()
        assert self.inside.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self.thread.join()

    def writer_goes_on(self) -> tuple[float, bool]:
        """A transaction of the writer's: when it began, and whether the round still ran."""
        with self.checkpointer.writing():
            return time.monotonic(), self.thread.is_alive()


def test_a_round_that_hangs_holds_the_writer_until_its_limit_and_no_longer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer_module, "HOLD_SECONDS", 0.1)
    with HeldRound(writer_module.Checkpointer(make_engine("sqlite://"))) as stuck:
        began, round_running = stuck.writer_goes_on()
        assert began >= stuck.deadline, "the writer went on before the limit"
        assert round_running, "the writer waited for the round to end"
        # The round has had its time: the next transaction does not wait for it again (the
        # round still hangs, up to 10 s).
        started = time.monotonic()
        assert stuck.writer_goes_on()[1]
        assert time.monotonic() - started < 5


def test_after_a_round_that_outlasted_its_limit_the_next_is_given_twice_as_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a disk too slow for the first limit the WAL still starts over: the next held round is
    given twice the time (up to the most), and after a round within its time, the first again."""
    monkeypatch.setattr(writer_module, "HOLD_SECONDS", 0.25)
    monkeypatch.setattr(writer_module, "HOLD_MAX_SECONDS", 0.5)
    checkpointer = writer_module.Checkpointer(make_engine("sqlite://"))

    def limit_of_a_round(outlasting: bool) -> float:
        """Hold a round that outlasts its limit (or ends at once): the limit it was given."""
        with HeldRound(checkpointer) as held:
            if outlasting:
                began, round_running = held.writer_goes_on()
                assert began >= held.deadline and round_running
            else:
                held.release.set()
                held.thread.join()
        return held.limit

    limits = [limit_of_a_round(outlasting) for outlasting in (True, True, True, False, True)]
    # Outlasted 0.25 s, then 0.5 s twice (the most); a round within its time sets it back.
    assert limits == [0.25, 0.5, 0.5, 0.5, 0.25]
