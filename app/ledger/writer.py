"""The ledger writer: one thread that commits the writes waiting at that moment together
(`treu serve` runs it in a child process of its own: WriterProcess below).

SQLite allows one writer at a time; a thread pool fighting over its lock spends its time
waiting. Here every ledger write is queued, the writer takes what waits (see batch_size), runs
each command in one transaction and commits once, and only then answers each request with its
own outcome. If anything unexpected fails, the batch is rolled back and replayed one command per
transaction, so one bad command never costs the others their write.

The writer keeps one connection for its life (no pool checkout per batch; on PostgreSQL that
would be a pre-ping round trip every time). On SQLite that connection has a large page cache and
leaves WAL checkpoints, which end in an fsync of the database file, to a checkpointer thread of
their own: no batch waits for the disk, and the WAL still cannot grow without bound.
"""

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection as MpConnection
from multiprocessing.process import BaseProcess
from typing import Any

from sqlalchemy import Connection, Engine, delete
from sqlalchemy.exc import IntegrityError

from app.clock import utcnow
from app.db import is_sqlite, make_engine, write_engine
from app.errors import AppError, Conflict, Unavailable, fault_of, faults
from app.ledger.models import IdempotencyRecord
from app.ledger.service import (
    Batch,
    Command,
    Lookups,
    Outcome,
    run_command,
    touch_devices,
)
from app.process import settle_garbage_collector

log = logging.getLogger("treu.writer")

MAX_BATCH = 256
# A batch of this many already shares out the fixed cost of a transaction (bench/).
SPLIT_FROM = 8
DEVICE_TOUCH_SECONDS = 60
CLEANUP_EVERY = timedelta(minutes=10)
# SQLite: the writer's page cache (KiB), and the WAL size (pages) past which the writer
# checkpoints itself after all (see Checkpointer).
WRITER_CACHE_KIB = 65_536
WAL_LIMIT_PAGES = 30_000
# The checkpointer: how often it runs while there are commits; the WAL size (frames) from which
# it starts the WAL over; at most how many rounds it runs back to back before that, unless one
# is this quick; how long it makes the writer wait at first, and at most.
# Every round ends in two fsyncs and copies each page written since the one before, however
# often it was written: 10 rounds a second copy half what 50 did. Starting over holds the
# writer for a round's fsyncs (6-10 ms on a slow disk): once a second, not three or four times.
# (A round also syncs the WAL: the commits since the last one are what a power cut can take
# back under synchronous=NORMAL; a crash of the process loses nothing.)
CHECKPOINT_EVERY_SECONDS = 0.1
RESTART_FRAMES = 8_000
CATCH_UP_ROUNDS = 3
QUICK_ROUND_SECONDS = 0.003
# A held round's fsyncs now and then take 30-70 ms on a shared disk, and every request in flight
# waited as long (the stamp's p99 climbed from 15 to 50 ms as the database grew, bench/): the writer
# waits HOLD_SECONDS, doubled after each round that outlasted it (see Checkpointer.hold).
HOLD_SECONDS = 0.012
HOLD_MAX_SECONDS = 0.25


# A health check's job: answered once the writer has run a query inside its transaction.
PING = Command(op="ping", merchant_id=0, device_id=0, now=datetime(1970, 1, 1, tzinfo=UTC))
PONG = Outcome(status=200, body={"status": "ok"})
# A ping is refused (and the health check answers 503) while the SQLite database's disk has
# less than this free, or for this long after a write failed for a fault of the machine's (on
# PostgreSQL the disk is the server's: a failed write is all the writer can see of it).
MIN_FREE_BYTES = 32 * 2**20
FAULT_MEMORY_SECONDS = 30.0


@dataclass
class _Job:
    command: Command
    loop: asyncio.AbstractEventLoop
    future: "asyncio.Future[Outcome]"


class LedgerWriter:
    def __init__(self, engine: Engine, retention_hours: int = 72) -> None:
        self.engine = write_engine(engine)
        self.retention = timedelta(hours=retention_hours)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._device_seen: dict[int, float] = {}
        self._last_cleanup = utcnow()
        self._conn: Connection | None = None
        self._known = Lookups()
        self._data_version: int | None = None
        self._checkpointer = Checkpointer(engine) if is_sqlite(engine) else None
        database = engine.url.database if is_sqlite(engine) else None
        self._disk = os.path.dirname(os.path.abspath(database)) if database else None
        self._write_fault: tuple[str, float] | None = None  # (kind, when) of the last failure

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="treu-ledger", daemon=True)
                self._thread.start()
                if self._checkpointer is not None:
                    self._checkpointer.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout=10)
        if self._checkpointer is not None:
            self._checkpointer.stop()

    async def submit(self, command: Command) -> Outcome:
        """Queue a command and wait until its transaction has committed."""
        self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.put(_Job(command, loop, future))
        return await future

    async def ping(self) -> Outcome:
        """Answered by the writer thread after a query on its connection: both are alive."""
        return await self.submit(PING)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def check(self, timeout: float) -> None:
        """Raise Unavailable unless the writer can write now (see health_check)."""
        await health_check(self, timeout)

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            self._close()

    def serve_pipe(self, pipe: MpConnection) -> None:
        """Run the batches sent over a pipe (WriterProcess's child) until it closes."""
        if self._checkpointer is not None:
            self._checkpointer.start()
        waiting: list[tuple[int, Command]] = []
        try:
            while True:
                try:
                    if not waiting:
                        waiting.extend(pickle.loads(pipe.recv_bytes()))
                    while pipe.poll():
                        waiting.extend(pickle.loads(pipe.recv_bytes()))
                except EOFError:
                    if not waiting:
                        return  # the server stopped; what it sent before is written
                size = batch_size(len(waiting))
                jobs, waiting = waiting[:size], waiting[size:]
                results = self.results([command for _, command in jobs])
                answers = [(i, _portable(r)) for (i, _), r in zip(jobs, results, strict=True)]
                with contextlib.suppress(OSError):  # the server is gone
                    pipe.send_bytes(pickle.dumps(answers, protocol=pickle.HIGHEST_PROTOCOL))
        finally:
            self._close()
            if self._checkpointer is not None:
                self._checkpointer.stop()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            for _ in range(batch_size(1 + self._queue.qsize()) - 1):
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            self._process(jobs)
            if stop:
                return

    def _process(self, jobs: list[_Job]) -> None:
        _deliver(jobs, self.results([job.command for job in jobs]))

    def results(self, commands: list[Command]) -> list[Outcome | BaseException]:
        """Run commands in one transaction (or, if that fails, one by one): their outcomes."""
        try:
            outcomes = self._run_batch(commands)
        except Exception as exc:
            outcomes = self._replay(commands, exc)
        return self._remember_faults(commands, outcomes)

    def _replay(self, commands: list[Command], exc: Exception) -> list[Outcome | BaseException]:
        """One by one after a failed batch, until a command meets a fault of the machine's: a
        dropped connection is replaced by the first, but a full disk or a database that is down
        would fail every one the same way (the rest get their 503 at once)."""
        if fault_of(exc) is None:
            log.warning("batch of %d failed; replaying one by one", len(commands), exc_info=True)
        outcomes: list[Outcome | BaseException] = []
        fault: str | None = None
        for command in commands:
            outcome = Unavailable(fault) if fault else self._run_alone(command)
            if isinstance(outcome, Unavailable):
                fault = outcome.fault
            outcomes.append(outcome)
        return outcomes

    def _remember_faults(
        self, commands: list[Command], outcomes: list[Outcome | BaseException]
    ) -> list[Outcome | BaseException]:
        """Remember whether the writes failed for the machine, and answer pings accordingly."""
        pinged = False
        for command, outcome in zip(commands, outcomes, strict=True):
            if command.op == "ping":
                pinged = True
            elif isinstance(outcome, Unavailable):
                self._write_fault = (outcome.fault, time.monotonic())
            elif isinstance(outcome, Outcome):
                self._write_fault = None
        if not pinged:
            return outcomes
        health = self._health()
        return [
            health if c.op == "ping" and o is PONG else o
            for c, o in zip(commands, outcomes, strict=True)
        ]

    def _health(self) -> Outcome | BaseException:
        """A ping's answer: PONG, unless the disk is (nearly) full or the last write failed."""
        if self._write_fault is not None:
            kind, when = self._write_fault
            if time.monotonic() - when < FAULT_MEMORY_SECONDS:
                return Unavailable(kind)
        if self._disk is not None:
            try:
                stat = os.statvfs(self._disk)
            except OSError as exc:  # the database's folder is gone, or its disk
                faults.report("disk-error", exc)
                return Unavailable("disk-error")
            free = stat.f_bavail * stat.f_frsize
            if free < MIN_FREE_BYTES:
                faults.report(
                    "disk-full",
                    f"{free // 2**20} MiB free on the database's disk, "
                    f"less than {MIN_FREE_BYTES // 2**20} MiB",
                )
                return Unavailable("disk-full")
        return PONG

    def _run_batch(self, all_commands: list[Command]) -> list[Outcome | BaseException]:
        commands = [c for c in all_commands if c.op != "ping"]
        with self._transaction() as conn:
            batch = Batch(conn, commands, self._lookups(conn))
            done = iter(batch.run_all(commands))
            batch.flush()
            if len(commands) < len(all_commands):
                conn.exec_driver_sql("SELECT 1")
            if commands:
                self._housekeeping(conn, commands)
        return [PONG if c.op == "ping" else next(done) for c in all_commands]

    def _lookups(self, conn: Connection) -> Lookups:
        """The device and program rows earlier batches read, while still current.

        SQLite's data_version changes when another connection commits: a device revoked or a
        program changed since (the writer itself changes neither). On PostgreSQL, fresh ones.
        """
        if not is_sqlite(self.engine):
            return Lookups()
        driver: Any = conn.connection.driver_connection
        version = driver.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version, self._known = version, Lookups()
        return self._known

    def _run_alone(self, command: Command) -> Outcome | BaseException:
        if command.op == "ping":
            try:
                with self._transaction() as conn:
                    conn.exec_driver_sql("SELECT 1")
            except Exception as exc:
                return _failure(exc)
            return PONG
        # A unique key met on the first try was committed by another instance in the meantime
        # (the same Idempotency-Key, or a void of the same entry); the second try sees that
        # write and answers as a retry of it.
        for _attempt in range(2):
            try:
                with self._transaction() as conn:
                    return run_command(conn, command)
            except AppError as refusal:
                return refusal
            except IntegrityError:
                continue
            except Exception as exc:
                return _failure(exc)
        return Conflict(
            "This request conflicts with one that was already made; reload and retry.",
            code="conflict",
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction on the writer's own connection; a connection that failed is replaced."""
        if self._conn is None:
            self._conn = self._connect()
        turn = self._checkpointer.writing() if self._checkpointer else contextlib.nullcontext()
        try:
            with turn, self._conn.begin():
                yield self._conn
        except (AppError, IntegrityError):
            raise  # a refusal or a lost race: the connection is fine
        except BaseException:
            # Dropped, not given back: the pool's rollback of a connection that is gone would
            # log a traceback ("Exception during reset") for a fault already reported.
            self._close(invalidate=True)
            raise
        if self._checkpointer is not None:
            self._checkpointer.wake()

    def _connect(self) -> Connection:
        conn = self.engine.connect()
        if is_sqlite(self.engine):
            conn.exec_driver_sql(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
            conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={WAL_LIMIT_PAGES}")
            conn.commit()
        return conn

    def _close(self, *, invalidate: bool = False) -> None:
        conn, self._conn = self._conn, None
        self._data_version = None  # a new connection counts versions of its own
        if conn is not None:
            with contextlib.suppress(Exception):
                if invalidate:
                    conn.invalidate()
                conn.close()

    def _housekeeping(self, conn: Connection, commands: list[Command]) -> None:
        now = commands[-1].now
        stamp = now.timestamp()
        stale = {
            c.device_id
            for c in commands
            if stamp - self._device_seen.get(c.device_id, 0) > DEVICE_TOUCH_SECONDS
        }
        if stale:
            touch_devices(conn, stale, now)
            self._device_seen.update(dict.fromkeys(stale, stamp))
        if now - self._last_cleanup > CLEANUP_EVERY:
            table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
            conn.execute(delete(table).where(table.c.created_at < now - self.retention))
            self._last_cleanup = now


def batch_size(waiting: int) -> int:
    """How many of the commands waiting the writer takes into its next transaction.

    All of them, up to SPLIT_FROM; of more, half (never fewer than SPLIT_FROM). Taking all
    turned the server and the writer into a convoy: the server read a queue's worth of requests
    while the writer waited, then waited itself while the writer committed them all. With half,
    the server answers the first half (and reads the requests that follow) while the writer
    commits the second: about a tenth more stamps/s at 16 connections (bench/).
    """
    if waiting <= SPLIT_FROM:
        return waiting
    return min(MAX_BATCH, max(SPLIT_FROM, (waiting + 1) // 2))


class Checkpointer:
    """SQLite only: copies the WAL back into the database file on a thread of its own.

    A checkpoint ends in an fsync of the WAL and of the database file, about 8 ms per thousand
    pages written since the last one. Run by the writer's commit (SQLite's default) it stalls
    the batch behind it. Here the checkpoints run beside the writer (sqlite3 releases the GIL
    meanwhile), PASSIVE, so they never block it. But the WAL starts over only when a transaction
    begins with every frame in it copied back, which never happens while the writer commits all
    the time: the WAL grew to WAL_LIMIT_PAGES, and then the writer's commit copied back the
    rest itself, a stall of 20 to 130 ms every 2,000 stamps (bench/). So once the WAL holds
    RESTART_FRAMES, rounds run back to back, each copying what came during the one before,
    until one is quick; then one more runs while the writer waits between two batches (hold()),
    a few milliseconds, and the writer's next transaction starts the WAL over. The writer
    checkpoints itself only if the WAL outgrows WAL_LIMIT_PAGES after all (a reader holding an
    old snapshot, a disk too slow to keep up).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._turn = threading.Condition()
        # Until when a held round keeps the writer waiting (inf: until the round has begun;
        # past: no round held).
        self._held_until = 0.0
        self._hold_limit = HOLD_SECONDS
        self._writing = False

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="treu-checkpoint", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join(timeout=30)

    def wake(self) -> None:
        self._wake.set()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around each of the writer's transactions: waits while a held round runs."""
        with self._turn:
            # A round that outlasts its time (a disk stalled) no longer holds anyone up: PASSIVE
            # runs beside the writer all the same, the WAL only starts over a round later.
            while (left := self._held_until - time.monotonic()) > 0:
                self._turn.wait(min(left, HOLD_MAX_SECONDS))
            self._writing = True
        try:
            yield
        finally:
            with self._turn:
                self._writing = False
                self._turn.notify_all()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """No transaction of the writer's runs meanwhile (the one under way ends first), for
        at most the hold limit: it doubles after a round that outlasted it (up to
        HOLD_MAX_SECONDS, so that on a slow disk the WAL still starts over) and is HOLD_SECONDS
        again after one within it."""
        with self._turn:
            # Held from now; the time limit counts from when the writer has stopped.
            self._held_until = float("inf")
            while self._writing:
                self._turn.wait()
            deadline = self._held_until = time.monotonic() + self._hold_limit
            self._turn.notify_all()
        try:
            yield
        finally:
            with self._turn:
                self._held_until = 0.0
                outlasted = time.monotonic() > deadline
                self._hold_limit = (
                    min(2 * self._hold_limit, HOLD_MAX_SECONDS) if outlasted else HOLD_SECONDS
                )
                self._turn.notify_all()

    def _run(self) -> None:
        # The raw sqlite3 connection is in autocommit mode (see app.db), as a checkpoint needs.
        raw = self.engine.raw_connection()
        driver: Any = raw.driver_connection
        try:
            while not self._stop.is_set():
                self._wake.wait()
                self._stop.wait(CHECKPOINT_EVERY_SECONDS)  # let a few commits gather
                self._wake.clear()
                try:
                    self._round(driver)
                except Exception as exc:
                    kind = fault_of(exc)
                    if kind is None:
                        log.warning("WAL checkpoint failed", exc_info=True)
                    else:
                        faults.report(kind, exc)
        finally:
            raw.close()

    def _round(self, driver: Any) -> None:
        frames = _checkpoint(driver)
        if frames < RESTART_FRAMES:
            return
        # Rounds back to back: each copies what came during the one before, less and less.
        for _ in range(CATCH_UP_ROUNDS):
            started = time.monotonic()
            _checkpoint(driver)
            if time.monotonic() - started <= QUICK_ROUND_SECONDS:
                break
        with self.hold():
            _checkpoint(driver)


def _checkpoint(driver: Any) -> int:
    """A PASSIVE checkpoint: the WAL's size in frames when it began."""
    _busy, frames, _copied = driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames)


def _failure(exc: Exception) -> BaseException:
    """A command's failure as its request sees it: a fault of the machine's as Unavailable (a
    503, logged now and then), anything else as it is (a bug: a 500, logged every time)."""
    kind = fault_of(exc)
    if kind is None:
        log.error("ledger command failed", exc_info=exc)
        return exc
    faults.report(kind, exc)
    return Unavailable(kind)


async def health_check(writer: "LedgerWriter | WriterProcess", timeout: float) -> None:
    """Raise Unavailable unless the writer runs, answers a ping within `timeout`, has room on
    its disk and wrote its last batch. A writer that is not running is started again, but the
    check that found it so answers 503: at that moment nothing could be written."""
    if not writer.running:
        faults.report("ledger-writer", "the ledger writer is not running; starting a new one")
        writer.start()
        raise Unavailable("ledger-writer")
    try:
        await asyncio.wait_for(writer.ping(), timeout)
    except Unavailable:
        raise
    except TimeoutError:
        faults.report("ledger-writer", f"the ledger writer did not answer within {timeout:.0f} s")
        raise Unavailable("ledger-writer") from None
    except Exception as exc:
        # A ping fails only for the machine (or the writer is gone): never a 500 here.
        kind = fault_of(exc) or "ledger-writer"
        faults.report(kind, exc)
        raise Unavailable(kind) from None


def _deliver(jobs: list[_Job], results: list[Outcome | BaseException]) -> None:
    """Answer every job; one wake-up per event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], object]]] = {}
    for job, result in zip(jobs, results, strict=True):
        by_loop.setdefault(job.loop, []).append((job.future, result))
    for loop, answers in by_loop.items():
        # The waiting request's event loop may be gone (client left, server stopping).
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: Iterable[tuple["asyncio.Future[Outcome]", object]]) -> None:
    """Give each waiting request its outcome, or raise its refusal there."""
    for future, result in answers:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)  # type: ignore[arg-type]


# --- the writer in a process of its own (treu serve) --------------------------------------------


class WriterProcess:
    """The ledger writer in a child process, for `treu serve`.

    In one process the writer thread and the event loop share the GIL: the writer gives it up
    for every SQLite call and then waits for the busy event loop to hand it back, so a batch
    took several times its own work (bench/). Here the event loop only verifies cards and
    passes commands on; the child runs the very same batches (LedgerWriter.results) on the
    other core, and sends each outcome back once its transaction has committed.

    The commands read in one turn of the event loop go over the pipe together as one message,
    at once, even while the child is still busy with a batch: when it is done, it reads every
    message waiting and takes its next batch from them (batch_size: one commit, one answer;
    the rest wait in the child for the batch after). So neither side waits for the
    other to notice it has work (holding the commands back until the child's answer arrived
    measured a few per cent fewer stamps/s, bench/). At most MAX_BATCH commands are in the
    child unanswered, the rest wait for its next answer: the child's answers always fit in the
    pipe, so it never blocks on them while the server blocks on sending more. If the child dies,
    waiting requests fail (nothing is answered that did not commit) and the next command starts
    a new child. Closing the pipe stops it: it first writes everything it was sent.
    """

    def __init__(self, database_url: str, retention_hours: int = 72) -> None:
        self.database_url = database_url
        self.retention_hours = retention_hours
        self._loop: asyncio.AbstractEventLoop | None = None
        self._process: BaseProcess | None = None
        self._pipe: MpConnection | None = None
        self._waiting: dict[int, asyncio.Future[Outcome]] = {}
        self._outbox: list[tuple[int, Command]] = []
        self._ids = itertools.count()
        self._scheduled = False  # a _send is due at the end of this turn of the event loop

    def start(self) -> None:
        """Start the child; call from the event loop that will submit (the app's lifespan)."""
        self._loop = asyncio.get_running_loop()
        if self._process is None or not self._process.is_alive():
            self._spawn()

    def _spawn(self) -> None:
        assert self._loop is not None
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve_in_child,
            args=(theirs, self.database_url, self.retention_hours),
            name="treu-ledger",
            daemon=True,
        )
        process.start()
        theirs.close()
        self._process, self._pipe = process, ours
        self._loop.add_reader(ours.fileno(), self._receive)

    async def submit(self, command: Command) -> Outcome:
        if self._pipe is None:
            try:
                self.start()
            except OSError as exc:  # no process to be had (out of memory, process limit)
                faults.report("ledger-writer", exc)
                raise Unavailable("ledger-writer") from None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        job_id = next(self._ids)
        self._waiting[job_id] = future
        self._outbox.append((job_id, command))
        if not self._scheduled:
            # After this turn of the event loop: the requests read in it go over together.
            self._scheduled = True
            loop.call_soon(self._send)
        return await future

    async def ping(self) -> Outcome:
        return await self.submit(PING)

    @property
    def running(self) -> bool:
        """The child is alive and the pipe to it open (a child that died closes it)."""
        return self._pipe is not None and self._process is not None and self._process.is_alive()

    async def check(self, timeout: float) -> None:
        """Raise Unavailable unless the writer can write now (see health_check)."""
        await health_check(self, timeout)

    def _send(self) -> None:
        self._scheduled = False
        # Every waiting request is in the outbox or in the child.
        room = MAX_BATCH - (len(self._waiting) - len(self._outbox))
        if not self._outbox or room <= 0:
            return  # nothing to send, or it goes when the child answers
        outbox, self._outbox = self._outbox[:room], self._outbox[room:]
        try:
            if self._pipe is None:
                raise OSError("no pipe")
            self._pipe.send_bytes(pickle.dumps(outbox, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            self._lost("the ledger writer is not running")

    def _receive(self) -> None:
        assert self._pipe is not None
        try:
            while self._pipe.poll():
                answers = pickle.loads(self._pipe.recv_bytes())
                waiting = ((self._waiting.pop(job_id, None), r) for job_id, r in answers)
                _settle((future, r) for future, r in waiting if future is not None)
        except (EOFError, OSError):
            self._lost("the ledger writer stopped")
            return
        self._send()  # what waited for room in the child

    def _lost(self, reason: str) -> None:
        """The child is gone: what waits for it gets a 503 (whether it was written before the
        child died is unknown: a retry with its Idempotency-Key tells, and never doubles it);
        the next command starts a new child."""
        faults.report("ledger-writer", f"{reason}; {len(self._waiting)} requests waited for it")
        self._close_pipe()
        self._scheduled, self._outbox = False, []
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(Unavailable("ledger-writer"))

    def _close_pipe(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(pipe.fileno())
            pipe.close()

    def stop(self) -> None:
        process, self._process = self._process, None
        self._close_pipe()  # the child sees the end of its input and stops
        if process is not None:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


def _serve_in_child(pipe: MpConnection, database_url: str, retention_hours: int) -> None:
    # Ctrl-C reaches the whole process group; the parent's shutdown closes the pipe instead,
    # so every command it was sent is written, none cut off.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    writer = LedgerWriter(make_engine(database_url), retention_hours=retention_hours)
    settle_garbage_collector()
    writer.serve_pipe(pipe)


def _portable(result: Outcome | BaseException) -> Outcome | BaseException:
    """What can cross the pipe: outcomes and refusals as they are, other errors by name only
    (the child has logged them)."""
    if isinstance(result, AppError):
        return result
    if isinstance(result, BaseException):
        return RuntimeError(f"the ledger writer failed: {type(result).__name__}")
    return result
