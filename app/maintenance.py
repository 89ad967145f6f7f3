"""Housekeeping on a timer: what the app keeps no longer than it needs (idle one-tap cards,
failed-login counts a day after their last failure), and stamps past their program's expiry
booked out (a card seen earlier has them booked out at its stamp).

`treu serve` runs it every `maintenance_interval_seconds` (the first round one interval after
start); `treu maintenance` runs one round, for a cron job or by hand.
"""

import asyncio
import logging
from datetime import datetime

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlmodel import Session

from app.clock import Clock
from app.config import Settings
from app.db import in_write_session
from app.ledger.service import expire_stamps
from app.merchants.throttle import purge_login_throttle
from app.tokens.service import purge_idle_cards

log = logging.getLogger("treu")


def _round(*, session: Session, settings: Settings, now: datetime) -> dict[str, int]:
    return {
        "idle_cards": purge_idle_cards(
            session=session, today=now.date(), idle_days=settings.card_idle_days
        ),
        "login_counts": purge_login_throttle(session=session, now=now),
        "expired_cards": expire_stamps(session.connection(), now),
    }


def run_once(engine: Engine, settings: Settings, now: datetime) -> dict[str, int]:
    """One round of housekeeping, in one write transaction; how many rows each task removed."""
    return in_write_session(engine, _round, settings=settings, now=now)


async def run_forever(engine: Engine, settings: Settings, clock: Clock) -> None:
    """Rounds every interval until cancelled; a failed round is logged and the next one runs."""
    while True:
        await asyncio.sleep(settings.maintenance_interval_seconds)
        try:
            await run_in_threadpool(run_once, engine, settings, clock())
        except Exception as exc:  # the next round tries again; never a request's problem
            log.warning("maintenance round failed: %s", type(exc).__name__)
