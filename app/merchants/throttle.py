"""Login throttling: password guessing is slowed down without letting a stranger lock an owner out.

Three brakes, none of which refuses an owner for what others did:
- per account *and* client (FailedLogins): five wrong passwords are free, then each further one
  doubles the wait, 30 s up to 15 min. Held in memory only, keyed by the keyed hash of the
  e-mail address and the rate limiter's keyed bucket of the client address: nothing about a
  client is ever stored, and failures at one address do not touch the owner at another;
- per account from everywhere (the `login_throttle` table): once an address has had
  BRAKE_AFTER failures within a day from all clients together (distributed guessing), each
  client gets one free failure on it instead of five. It never refuses a check by itself;
- at most N password checks at once in the process (PasswordChecks): each Argon2id run takes
  64 MiB, so the memory logins can take is bounded, and a login beyond them is told to come
  back in a moment instead of waiting for a database connection.
The per-client limit across accounts is the rate limiter's "logins" limit (app/ratelimit.py).
"""

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from app.merchants.models import LoginThrottle

# Five wrong passwords are free (typos happen); then each further one doubles the wait.
FREE_FAILURES = 5
FIRST_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 15 * 60
# A failure this old no longer counts: the owner who mistyped last week starts afresh.
FAILURE_MEMORY = timedelta(hours=24)
# Failures on one account from all clients within a day that make it "under attack": far more
# than an owner's typos. From then on each client has one free failure on it, not five.
BRAKE_AFTER = 20
BRAKED_FREE_FAILURES = 1
# (account, client) pairs remembered at most (~200 bytes each); the least recent go first.
MAX_REMEMBERED = 50_000
# A login refused because every password check is taken: try again after this many seconds.
BUSY_RETRY_SECONDS = 2


def delay_after(failures: int, free: int = FREE_FAILURES) -> int:
    """Seconds to wait after this many failures in a row: 0, then 30 s doubling to 15 min."""
    if failures < free:
        return 0
    return int(min(FIRST_DELAY_SECONDS * 2 ** (failures - free), MAX_DELAY_SECONDS))


@dataclass
class _Failures:
    count: int
    last: datetime
    locked_until: datetime | None


class FailedLogins:
    """Failed logins per (account, client bucket), in this process's memory only."""

    def __init__(self, max_remembered: int = MAX_REMEMBERED) -> None:
        self._rows: OrderedDict[tuple[str, str], _Failures] = OrderedDict()
        self._max = max_remembered
        self._lock = threading.Lock()

    def wait(self, *, account: str, client: str, now: datetime) -> int:
        """How long this client must wait before its next try on this account (0: go ahead)."""
        with self._lock:
            row = self._rows.get((account, client))
        if row is None or row.locked_until is None or row.locked_until <= now:
            return 0
        return max(1, int((row.locked_until - now).total_seconds()))

    def record(self, *, account: str, client: str, now: datetime, free: int) -> int:
        """Count a wrong password; returns the wait it imposes (seconds, 0 for none)."""
        with self._lock:
            row = self._rows.pop((account, client), None)
            if row is None or row.last < now - FAILURE_MEMORY:
                row = _Failures(0, now, None)
            row.count += 1
            row.last = now
            delay = delay_after(row.count, free)
            row.locked_until = now + timedelta(seconds=delay) if delay else None
            # Most recent last: the first ones are the stalest, forgotten first.
            self._rows[(account, client)] = row
            while self._rows and (
                len(self._rows) > self._max
                or next(iter(self._rows.values())).last < now - FAILURE_MEMORY
            ):
                self._rows.popitem(last=False)
        return delay

    def forget(self, *, account: str, client: str) -> None:
        """The right password from this client: its failures on this account are forgotten
        (a stranger's elsewhere are not: the owner's login does not reset their waits)."""
        with self._lock:
            self._rows.pop((account, client), None)

    def __len__(self) -> int:
        return len(self._rows)


class PasswordChecks:
    """At most `size` password checks at once in this process; a check beyond them is refused
    at once rather than queued (a queue would hold threads and connections while it waits)."""

    def __init__(self, size: int) -> None:
        self._free = threading.BoundedSemaphore(max(1, size))

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """Whether a check may run now; the slot is held until the block ends."""
        got = self._free.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._free.release()


# --- the stored brake (per account, all clients together) --------------------------------------


def record_failure(*, session: Session, email_key: str, now: datetime) -> int:
    """Count a failed login on this account, whoever sent it; returns its failures within the
    last day (failures older than FAILURE_MEMORY start the count afresh)."""
    table = LoginThrottle.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    make_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    forgotten = now - FAILURE_MEMORY
    # One statement, so two wrong passwords sent at once are both counted.
    first = make_insert(table).values(email_hash=email_key, failures=1, last_failure_at=now)
    stmt = first.on_conflict_do_update(
        index_elements=[table.c.email_hash],
        set_={
            "failures": case((table.c.last_failure_at < forgotten, 1), else_=table.c.failures + 1),
            "last_failure_at": now,
        },
    ).returning(table.c.failures)
    return int(session.execute(stmt).scalar_one())


def free_failures(failures_everywhere: int) -> int:
    """Free failures per client on an account with this many failures from all clients."""
    return BRAKED_FREE_FAILURES if failures_everywhere >= BRAKE_AFTER else FREE_FAILURES


def purge_login_throttle(*, session: Session, now: datetime) -> int:
    """Delete the failure counts whose last failure is more than a day old (they no longer
    count); most are of addresses that are no owner's. Returns how many went."""
    result = session.execute(
        delete(LoginThrottle).where(col(LoginThrottle.last_failure_at) < now - FAILURE_MEMORY)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
