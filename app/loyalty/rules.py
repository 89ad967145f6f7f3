"""Which levers apply to a visit: pure decisions from the shop's own balance state.

Called by the ledger inside a stamp's transaction. Everything they look at is what the shop
already holds about the card (first and previous visit, stamps towards status), plus the
shop's local time; nothing is stored to make them.
"""

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Kinds whose bonus depends on the visit's time (and the card's hold-out) alone.
TIME_ONLY = frozenset({"multiplier", "campaign"})
EVERY_DAY = 127


class TierLike(Protocol):
    id: Any
    name: str
    lifetime_stamps: int
    bonus_per_visit: int
    perk_text: str


@dataclass(frozen=True)
class Visit:
    """A stamp as the promotions see it: when (shop time) and the card's state here before it."""

    at: datetime  # aware, in the shop's time zone
    count: int  # stamps the cashier gave
    first_here: bool  # the card's first visit at this shop
    first_visit_at: datetime | None  # its first visit here (this one if first_here)
    previous_visit_at: datetime | None  # its visit before this one (None if first_here)
    status_stamps: int  # stamps towards status before this visit


@dataclass(frozen=True)
class Bonus:
    promotion_id: int | None
    title: str
    stamps: int


def weekday_mask(days: Iterable[str]) -> int:
    """mon,tue,… as a bit mask (Monday = bit 0); an unknown name raises ValueError."""
    mask = 0
    for day in days:
        name = day.strip().lower()[:3]
        if name not in WEEKDAYS:
            raise ValueError(f"unknown weekday {day!r}: use mon, tue, wed, thu, fri, sat, sun")
        mask |= 1 << WEEKDAYS.index(name)
    return mask


def weekday_names(mask: int) -> list[str]:
    return [name for i, name in enumerate(WEEKDAYS) if mask & (1 << i)]


def held_out(key: str, holder: str, percent: int) -> bool:
    """Whether this card is in the promotion's hold-out group: a keyed hash of the per-shop
    holder under the promotion's own key, so the share is fixed and nothing is stored."""
    if percent <= 0:
        return False
    digest = hashlib.blake2b(holder.encode(), key=bytes.fromhex(key), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < percent


def runs_on(promotion: Any, day: date) -> bool:
    """Whether the promotion runs on this shop-local date (not ended, within its dates)."""
    if promotion.starts_on is not None and day < promotion.starts_on:
        return False
    return promotion.ends_on is None or day <= promotion.ends_on


def full_years(since: datetime, until: datetime) -> int:
    # Both on one calendar (until's, the shop's): the stored moment is UTC, and comparing its
    # date and hour with local ones counts a year that many hours early.
    if since.tzinfo is not None and until.tzinfo is not None:
        since = since.astimezone(until.tzinfo)
    years = until.year - since.year
    if (until.month, until.day, until.time()) < (since.month, since.day, since.time()):
        years -= 1
    return max(years, 0)


def promotion_stamps(promotion: Any, visit: Visit) -> int:
    """The bonus stamps this promotion gives for this visit (0: none)."""
    kind = promotion.kind
    if kind == "multiplier":
        if not promotion.weekdays & (1 << visit.at.weekday()):
            return 0
        minute = visit.at.hour * 60 + visit.at.minute
        lo = promotion.from_minute if promotion.from_minute is not None else 0
        hi = promotion.to_minute if promotion.to_minute is not None else 1440
        if not lo <= minute < hi:
            return 0
        return int(visit.count * (promotion.factor - 1))
    if kind == "welcome":
        return int(promotion.stamps) if visit.first_here else 0
    if kind == "winback":
        previous = visit.previous_visit_at
        if previous is None:
            return 0
        away = (visit.at - previous).total_seconds() / 86_400
        return int(promotion.stamps) if away >= promotion.away_days else 0
    if kind == "anniversary":
        first, previous = visit.first_visit_at, visit.previous_visit_at
        if first is None or previous is None:
            return 0
        years = full_years(first, visit.at)
        return int(promotion.stamps) if years >= 1 and years > full_years(first, previous) else 0
    if kind == "campaign":
        return int(promotion.stamps)
    return 0


def tier_of(tiers: Sequence[TierLike], status_stamps: int) -> TierLike | None:
    """The highest tier these stamps reach (tiers in any order)."""
    reached = [t for t in tiers if status_stamps >= t.lifetime_stamps]
    return max(reached, key=lambda t: t.lifetime_stamps, default=None)


def next_tier_of(tiers: Sequence[TierLike], status_stamps: int) -> TierLike | None:
    ahead = [t for t in tiers if status_stamps < t.lifetime_stamps]
    return min(ahead, key=lambda t: t.lifetime_stamps, default=None)


def bonuses(
    *,
    promotions: Sequence[Any],
    tiers: Sequence[TierLike],
    visit: Visit,
    holder: str,
    program_id: int,
) -> list[tuple[Any, Bonus]]:
    """What this visit earns on top of its stamps: each running promotion's bonus (not for the
    hold-out group), then the tier's perk; budgets are the caller's (they need the database).
    The first element of each pair is the promotion row (None for a tier's perk)."""
    out: list[tuple[Any, Bonus]] = []
    day = visit.at.date()
    for promotion in promotions:
        if promotion.program_id is not None and promotion.program_id != program_id:
            continue
        if not runs_on(promotion, day):
            continue
        stamps = promotion_stamps(promotion, visit)
        if stamps <= 0 or held_out(promotion.holdout_key, holder, promotion.holdout_percent):
            continue
        out.append((promotion, Bonus(promotion.id, promotion.title, stamps)))
    tier = tier_of(tiers, visit.status_stamps)
    if tier is not None and tier.bonus_per_visit > 0:
        out.append((None, Bonus(None, tier.name, tier.bonus_per_visit)))
    return out


def local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone)
