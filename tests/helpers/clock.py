"""The clock the app runs on in tests."""

from datetime import UTC, datetime, timedelta


class Clock:
    """A clock the test moves by hand; starts at a fixed instant."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
