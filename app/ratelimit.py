"""Per-client rate limits, held in memory only: never written to a table or a log.

A client is its network address as the server sees it (behind a reverse proxy: the address the
proxy forwards, see the README's operations section). Even in memory the address is not kept
in clear: buckets are named by a keyed hash under a key made at start-up and never stored, so
a memory dump does not list who came. `TREU_RATE_LIMITS=off` switches every limit off.
"""

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import Request
from limits import RateLimitItem, RateLimitItemPerSecond, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from app.config import Settings
from app.errors import AppError


class TooManyRequests(AppError):
    status = 429
    title = "Too many requests"


# What each limit is for: the setting that holds it, and the words of its refusal.
LIMITS = {
    "cards": ("rate_limit_cards", "Too many new cards from this network. Try again later."),
    "restore": ("rate_limit_restore", "Too many recovery attempts. Try again later."),
    "codes": ("rate_limit_codes", "Too many codes tried. Try again later."),
    "pairing": ("rate_limit_pairing", "Too many pairing codes tried. Try again later."),
    "logins": ("rate_limit_logins", "Too many login attempts from this network. Try again later."),
}


@dataclass
class RateLimits:
    """The limits of one app: how many tries each client has per window, per limit."""

    enabled: bool
    items: dict[str, list[RateLimitItem]]
    _limiter: MovingWindowRateLimiter = field(
        default_factory=lambda: MovingWindowRateLimiter(MemoryStorage())
    )
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @classmethod
    def from_settings(cls, settings: Settings) -> "RateLimits":
        return cls(
            enabled=settings.rate_limits.strip().lower() not in ("off", "0", "false", "no"),
            items={name: parse_many(getattr(settings, attr)) for name, (attr, _) in LIMITS.items()},
        )

    def bucket(self, client: str) -> str:
        return hashlib.blake2b(client.encode(), key=self._key, digest_size=16).hexdigest()

    def hit(self, name: str, client: str) -> None:
        """Count one try of this client; TooManyRequests (429, Retry-After) past the limit."""
        if not self.enabled:
            return
        bucket = self.bucket(client)
        for item in self.items[name]:
            if not self._limiter.hit(item, name, bucket):
                reset, _ = self._limiter.get_window_stats(item, name, bucket)
                raise _refusal(name, reset)

    def first(self, name: str, client: str, seconds: int) -> bool:
        """Whether this is the client's first such event within `seconds` (counted either way,
        also with the limits off: it de-duplicates, it refuses nothing)."""
        return self._limiter.hit(RateLimitItemPerSecond(1, seconds), name, self.bucket(client))


def _refusal(name: str, reset: float) -> TooManyRequests:
    wait = max(1, int(reset - time.time()) + 1)
    return TooManyRequests(LIMITS[name][1], headers={"Retry-After": str(wait)}, code="rate-limited")


def client_of(request: Request) -> str:
    """The client's address (never stored: see the module's docstring)."""
    return request.client.host if request.client is not None else "unknown"


def rate_limits_of(request: Request) -> RateLimits:
    limits: RateLimits = request.app.state.rate_limits
    return limits


def limit(request: Request, name: str) -> None:
    """Count one try of `name` by this request's client (429 past the limit)."""
    rate_limits_of(request).hit(name, client_of(request))


def rate_limited(name: str) -> Callable[[Request], Awaitable[None]]:
    """A route dependency that counts one try of `name` (a coroutine: no thread hop)."""

    async def check(request: Request) -> None:
        limit(request, name)

    return check


def first_click(request: Request, name: str, seconds: int) -> bool:
    """Whether this client's event `name` is its first within `seconds` (always True with the
    limits off): counting it only then keeps one client from inflating a figure."""
    limits = rate_limits_of(request)
    return not limits.enabled or limits.first(name, client_of(request), seconds)
