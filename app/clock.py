"""Time, in one place so tests can move it: aware UTC, truncated to whole seconds.

Whole seconds on purpose: microsecond timestamps shared across rows are a side door that can link
records which are otherwise unlinkable.
"""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
