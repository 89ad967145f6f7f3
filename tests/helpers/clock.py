"""The clock the app runs on in tests.

It starts at a fixed instant, or at TREU_TEST_CLOCK (ISO 8601, e.g. 2026-11-02T23:30:00Z, an
hour when the shop's local date is not the UTC date, or 2026-10-25T00:30:00Z, the night Vienna
leaves summer time), so the suite can be run at the instants where dates go wrong.
"""

import os
from datetime import UTC, datetime, timedelta

DEFAULT_START = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)


def start_instant() -> datetime:
    """Where a test clock starts: TREU_TEST_CLOCK if set, whole seconds, in UTC."""
    given = os.environ.get("TREU_TEST_CLOCK", "").strip()
    if not given:
        return DEFAULT_START
    moment = datetime.fromisoformat(given.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"TREU_TEST_CLOCK needs a time zone (Z or +hh:mm): {given!r}")
    return moment.astimezone(UTC).replace(microsecond=0)


class Clock:
    """A clock the test moves by hand; starts at start_instant()."""

    def __init__(self) -> None:
        self.now = start_instant()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
