"""Refusals of ledger writes, in words a cashier understands."""

from app.errors import AppError


class LedgerRefusal(AppError):
    """A stamp, redemption or void that the rules do not allow; nothing was written."""


def cooldown(seconds_ago: int, retry_after: int) -> LedgerRefusal:
    return LedgerRefusal(
        f"Already stamped {seconds_ago} seconds ago. Try again in {retry_after} seconds.",
        status=429,
        title="Already stamped",
        headers={"Retry-After": str(max(retry_after, 1))},
        code="cooldown",
    )


def daily_cap(cap: int) -> LedgerRefusal:
    return LedgerRefusal(
        f"This card already got the daily maximum of {cap} stamps here today.",
        status=429,
        title="Daily limit reached",
        headers={"Retry-After": "3600"},
        code="daily-cap",
    )


def no_reward_due(stamps: int, required: int) -> LedgerRefusal:
    return LedgerRefusal(
        f"No reward is due yet: the card has {stamps} of {required} stamps.",
        status=409,
        title="No reward due",
        code="no-reward-due",
    )
