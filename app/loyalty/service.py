"""The owner's levers: programs (create, archive, close), reward levels, tiers, promotions.

Every function takes the owner's merchant and refuses another merchant's rows as unknown. The
rules are checked here, once, for the merchant area, the merchant's JSON API and the CLI alike.
"""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import Session, col, select

from app.errors import NotFound
from app.ledger import service as ledger
from app.loyalty.models import KINDS, Promotion, RewardLevel, Tier
from app.loyalty.rules import EVERY_DAY, weekday_mask, weekday_names
from app.loyalty.schemas import ProgramPublic, PromotionPublic, RewardLevelPublic, TierPublic
from app.merchants.exceptions import MerchantError
from app.merchants.models import Merchant, Program, ProgramBase, merchant_zone
from app.merchants.service import (
    ProgramChange,
    get_program,
    set_program_active,
    update_program,
    validated,
)

# At most this many of each per shop: a till's screen and a card page stay readable.
MAX_PROGRAMS = 8
MAX_LEVELS = 5
MAX_TIERS = 5
MAX_PROMOTIONS = 20


def _text(value: str, what: str, limit: int) -> str:
    text = " ".join(value.split())
    if not text:
        raise MerchantError(f"{what} needs a text.", status=422)
    if len(text) > limit:
        raise MerchantError(f"{what} may have at most {limit} characters.", status=422)
    return text


# --- programs ----------------------------------------------------------------------------------


def create_program(
    *,
    session: Session,
    merchant: Merchant,
    now: datetime,
    name: str,
    stamps_required: int,
    reward_text: str,
    levels: Sequence[tuple[int, str]] = (),
    max_stamps_per_scan: int = 10,
    cooldown_seconds: int = 60,
    daily_cap: int = 0,
    expire_months: int = 0,
) -> Program:
    """A new program of the shop, with its reward levels."""
    assert merchant.id is not None
    open_programs = [p for p in programs(session=session, merchant=merchant) if p.closed_at is None]
    if len(open_programs) >= MAX_PROGRAMS:
        raise MerchantError(f"A shop can run at most {MAX_PROGRAMS} programs.", status=409)
    rules = validated(
        ProgramBase,
        {
            "name": _text(name, "The program", 120), "stamps_required": stamps_required,
            "reward_text": _text(reward_text, "The reward", 200),
            "max_stamps_per_scan": max_stamps_per_scan, "cooldown_seconds": cooldown_seconds,
            "daily_cap": daily_cap, "expire_months": expire_months,
        },
    )  # fmt: skip
    program = Program(**rules.model_dump(), merchant_id=merchant.id, created_at=now)
    session.add(program)
    session.flush()
    set_levels(session=session, merchant=merchant, program=program, levels=levels, now=now)
    return program


def programs(*, session: Session, merchant: Merchant) -> list[Program]:
    """Every program of the shop, closed ones included, in the order they were made."""
    query = select(Program).where(Program.merchant_id == merchant.id).order_by(col(Program.id))
    return list(session.exec(query).all())


def program_status(program: Program) -> str:
    """running, paused, archived (no stamps, rewards redeemable) or closed (nothing at all)."""
    if program.closed_at is not None:
        return "closed"
    if program.archived_at is not None:
        return "archived"
    return "running" if program.active else "paused"


def program_public(*, session: Session, program: Program) -> ProgramPublic:
    """A program as the merchant's JSON API and the CLI show it: rules, reward levels, status."""
    levels = levels_of(session=session, program=program)
    return ProgramPublic(
        id=program.id or 0, name=program.name, stamps_required=program.stamps_required,
        reward=program.reward_text,
        levels=[RewardLevelPublic(id=lv.id or 0, stamps=lv.stamps, reward=lv.reward_text)
                for lv in levels],
        max_stamps_per_scan=program.max_stamps_per_scan,
        cooldown_seconds=program.cooldown_seconds, daily_cap=program.daily_cap,
        expire_months=program.expire_months, active=program.active,
        status=program_status(program),
        archived_at=program.archived_at, closed_at=program.closed_at,
    )  # fmt: skip


def change_program(
    *,
    session: Session,
    merchant: Merchant,
    program_id: int,
    now: datetime,
    name: str,
    stamps_required: int,
    reward_text: str,
    max_stamps_per_scan: int,
    cooldown_seconds: int,
    daily_cap: int,
    expire_months: int,
    levels: Sequence[tuple[int, str]] | None = None,
) -> ProgramChange:
    """Change a program's rules, its expiry and (when given) its reward levels in one go; the
    levels it keeps must stay below a lowered goal. A closed program cannot be changed."""
    program = get_program(session=session, merchant=merchant, program_id=program_id)
    if program.closed_at is not None:
        raise MerchantError("This program is closed; it cannot be changed.", status=409)
    if levels is None:
        levels = [(lv.stamps, lv.reward_text) for lv in levels_of(session=session, program=program)]
    if any(stamps >= stamps_required for stamps, _text in levels):
        raise MerchantError(
            "A reward level needs fewer stamps than the main reward: lower or remove it first.",
            status=422,
        )
    change = update_program(
        session=session, merchant=merchant, program_id=program_id, now=now, name=name,
        stamps_required=stamps_required, reward_text=reward_text,
        max_stamps_per_scan=max_stamps_per_scan, cooldown_seconds=cooldown_seconds,
        daily_cap=daily_cap, expire_months=expire_months,
    )  # fmt: skip
    set_levels(session=session, merchant=merchant, program=program, levels=levels, now=now)
    return change


def set_expiry(*, session: Session, merchant: Merchant, program_id: int, months: int) -> Program:
    if not 0 <= months <= 60:
        raise MerchantError("Stamps expire after 1 to 60 months (0: never).", status=422)
    program = get_program(session=session, merchant=merchant, program_id=program_id)
    program.expire_months = months
    session.add(program)
    session.flush()
    return program


def archive_program(
    *, session: Session, merchant: Merchant, program_id: int, now: datetime
) -> Program:
    """No more stamps in this program; its history stays and its rewards stay redeemable."""
    program = get_program(session=session, merchant=merchant, program_id=program_id)
    if program.closed_at is None and program.archived_at is None:
        program.archived_at = now
        program.active = False
        session.add(program)
        session.flush()
    return program


def close_program(
    *, session: Session, merchant: Merchant, program_id: int, now: datetime
) -> tuple[Program, int]:
    """Close an archived program out: its outstanding stamps are booked out (an `expiry` entry
    per card, so the ledger still adds up) and nothing more can happen in it. The program and
    the number of cards whose stamps were booked out."""
    program = get_program(session=session, merchant=merchant, program_id=program_id)
    if program.archived_at is None:
        raise MerchantError("Archive the program first; then it can be closed.", status=409)
    if program.closed_at is not None:
        return program, 0
    assert program.id is not None and merchant.id is not None
    # Every card, also one that redeemed within this very second (times are whole seconds).
    cards = ledger.book_out(
        session.connection(), merchant_id=merchant.id, program_id=program.id, now=now,
        idle_since=now + timedelta(seconds=1),
    )  # fmt: skip
    program.closed_at = now
    session.add(program)
    session.flush()
    return program, cards


def change_program_state(
    *, session: Session, merchant: Merchant, program_id: int, action: str, now: datetime
) -> tuple[Program, int | None]:
    """Pause, resume, archive or close a program (the JSON API's and the CLI's verbs); with
    close, also the number of cards whose stamps were booked out."""
    if action == "close":
        return close_program(session=session, merchant=merchant, program_id=program_id, now=now)
    if action == "archive":
        program = archive_program(
            session=session, merchant=merchant, program_id=program_id, now=now
        )
    elif action in ("pause", "resume"):
        program = set_program_active(
            session=session, merchant=merchant, program_id=program_id, active=action == "resume"
        )
    else:
        raise ValueError(f"not a program action: {action!r}")
    return program, None


# --- reward levels -----------------------------------------------------------------------------


def levels_of(*, session: Session, program: Program) -> list[RewardLevel]:
    query = (
        select(RewardLevel)
        .where(RewardLevel.merchant_id == program.merchant_id)
        .where(RewardLevel.program_id == program.id)
        .order_by(col(RewardLevel.stamps))
    )
    return list(session.exec(query).all())


def set_levels(
    *,
    session: Session,
    merchant: Merchant,
    program: Program,
    levels: Sequence[tuple[int, str]],
    now: datetime,
) -> list[RewardLevel]:
    """Replace a program's reward levels: each below the main reward, at most one per number of
    stamps. A level that keeps its stamps keeps its id (a till may be about to redeem it)."""
    assert merchant.id is not None and program.id is not None
    if program.closed_at is not None:
        raise MerchantError("This program is closed; it cannot be changed.", status=409)
    if len(levels) > MAX_LEVELS:
        raise MerchantError(f"A program has at most {MAX_LEVELS} reward levels.", status=422)
    wanted: dict[int, str] = {}
    for stamps, text in levels:
        if not 1 <= stamps < program.stamps_required:
            raise MerchantError(
                f"A reward level needs fewer stamps than the main reward "
                f"(1 to {program.stamps_required - 1}).",
                status=422,
            )
        if stamps in wanted:
            raise MerchantError(f"Two reward levels at {stamps} stamps.", status=422)
        wanted[stamps] = _text(text, "A reward level", 200)
    kept: list[RewardLevel] = []
    for level in levels_of(session=session, program=program):
        if level.stamps in wanted:
            level.reward_text = wanted.pop(level.stamps)
            session.add(level)
            kept.append(level)
        else:
            session.delete(level)
    for stamps, text in wanted.items():
        level = RewardLevel(
            merchant_id=merchant.id, program_id=program.id, stamps=stamps, reward_text=text,
            created_at=now,
        )  # fmt: skip
        session.add(level)
        kept.append(level)
    session.flush()
    return sorted(kept, key=lambda level: level.stamps)


def parse_level(text: str) -> tuple[int, str]:
    """`5=Small coffee` → (5, "Small coffee")."""
    stamps, sep, reward = text.partition("=")
    if not sep or not stamps.strip().isdigit():
        raise MerchantError(f"A level is STAMPS=REWARD, e.g. 5=Small coffee (not {text!r}).")
    return int(stamps), reward.strip()


# --- tiers ---------------------------------------------------------------------------------------


def tiers(*, session: Session, merchant: Merchant) -> list[Tier]:
    query = select(Tier).where(Tier.merchant_id == merchant.id).order_by(col(Tier.lifetime_stamps))
    return list(session.exec(query).all())


def tier_public(tier: Tier) -> TierPublic:
    """A tier as the merchant's JSON API and the CLI show it."""
    return TierPublic(
        id=tier.id or 0, name=tier.name, lifetime_stamps=tier.lifetime_stamps,
        bonus_per_visit=tier.bonus_per_visit, perk=tier.perk_text,
    )  # fmt: skip


def create_tier(
    *,
    session: Session,
    merchant: Merchant,
    now: datetime,
    name: str,
    lifetime_stamps: int,
    bonus_per_visit: int = 0,
    perk_text: str = "",
) -> Tier:
    """A regulars' status from `lifetime_stamps` collected at the shop."""
    assert merchant.id is not None
    existing = tiers(session=session, merchant=merchant)
    if len(existing) >= MAX_TIERS:
        raise MerchantError(f"A shop has at most {MAX_TIERS} tiers.", status=409)
    if any(t.lifetime_stamps == lifetime_stamps for t in existing):
        raise MerchantError(f"A tier at {lifetime_stamps} stamps exists already.", status=409)
    tier = validated(
        Tier,
        {
            "merchant_id": merchant.id, "name": _text(name, "The tier", 60),
            "lifetime_stamps": lifetime_stamps, "bonus_per_visit": bonus_per_visit,
            "perk_text": " ".join(perk_text.split()), "created_at": now,
        },
    )  # fmt: skip
    session.add(tier)
    session.flush()
    return tier


def get_tier(*, session: Session, merchant: Merchant, tier_id: int) -> Tier:
    tier = session.get(Tier, tier_id)
    if tier is None or tier.merchant_id != merchant.id:
        raise NotFound(f"No tier {tier_id} at {merchant.slug}.", code="unknown-tier")
    return tier


def delete_tier(*, session: Session, merchant: Merchant, tier_id: int) -> None:
    """Remove a tier; cards keep their stamps, only the status and its perk go."""
    session.delete(get_tier(session=session, merchant=merchant, tier_id=tier_id))
    session.flush()


def set_tier_lapse(*, session: Session, merchant: Merchant, months: int) -> Merchant:
    """Status lapses after `months` without a visit (0: never)."""
    if not 0 <= months <= 60:
        raise MerchantError("Status lapses after 1 to 60 months (0: never).", status=422)
    merchant.tier_lapse_months = months
    session.add(merchant)
    session.flush()
    return merchant


# What the owner tells the dashboard (app.analytics reads it): the shop's purchase cycle, and per
# program what a visit brings in and a reward costs. Money in cents (EUR).
CYCLE_DAYS = (7, 180)
MAX_CENTS = 100_000_000


def set_purchase_cycle(*, session: Session, merchant: Merchant, days: int | None) -> Merchant:
    """Confirm or set the shop's purchase cycle in days (None: derive it from the visits)."""
    if days is not None and not CYCLE_DAYS[0] <= days <= CYCLE_DAYS[1]:
        raise MerchantError(
            f"A purchase cycle is {CYCLE_DAYS[0]} to {CYCLE_DAYS[1]} days.", status=422
        )
    merchant.purchase_cycle_days = days
    session.add(merchant)
    session.flush()
    return merchant


def set_program_values(
    *,
    session: Session,
    merchant: Merchant,
    program_id: int,
    average_ticket_cents: int | None,
    reward_value_cents: int | None,
) -> Program:
    """The program's average ticket and reward value in cents (None: not given)."""
    program = get_program(session=session, merchant=merchant, program_id=program_id)
    for cents in (average_ticket_cents, reward_value_cents):
        if cents is not None and not 0 <= cents <= MAX_CENTS:
            raise MerchantError("An amount is 0 to 1,000,000.", status=422)
    program.average_ticket_cents = average_ticket_cents
    program.reward_value_cents = reward_value_cents
    session.add(program)
    session.flush()
    return program


# --- promotions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromotionSpec:
    """A promotion as the owner describes it (the merchant area, the JSON API, the CLI)."""

    kind: str
    title: str = ""
    program_id: int | None = None
    factor: int = 2
    stamps: int = 1
    weekdays: int = 127
    from_minute: int | None = None
    to_minute: int | None = None
    away_days: int = 0
    starts_on: date | None = None
    ends_on: date | None = None
    budget: int = 0
    holdout_percent: int = 0


DEFAULT_TITLES = {
    "multiplier": "Happy Hour",
    "welcome": "Welcome",
    "winback": "Welcome back",
    "anniversary": "Anniversary",
    "campaign": "Bonus",
}


def parse_time(text: str) -> int:
    """`14:00` → minutes after midnight (24:00 allowed as the end of the day)."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise MerchantError(f"A time is HH:MM, e.g. 14:00 (not {text!r}).", status=422)
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > 1440:
        raise MerchantError(f"{text!r} is not a time of day.", status=422)
    return value


def time_text(minute: int | None) -> str | None:
    """Minutes after midnight as HH:MM (parse_time's inverse); None stays None."""
    return None if minute is None else f"{minute // 60:02d}:{minute % 60:02d}"


# The settings each kind of promotion takes besides the shared ones (title, program, dates,
# budget, hold-out). The merchant area shows only these; the API refuses the others rather
# than silently ignoring what the owner meant.
KIND_SETTINGS: dict[str, tuple[str, ...]] = {
    "multiplier": ("factor", "days", "from", "to"),
    "welcome": ("stamps",),
    "winback": ("stamps", "away_days"),
    "anniversary": ("stamps",),
    "campaign": ("stamps",),
}


def promotion_spec(
    *,
    kind: str,
    title: str = "",
    program_id: int | None = None,
    factor: int | None = None,
    stamps: int | None = None,
    days: Sequence[str] | None = None,
    from_time: str | None = None,
    to_time: str | None = None,
    away_days: int | None = None,
    starts_on: date | None = None,
    ends_on: date | None = None,
    budget: int = 0,
    holdout_percent: int = 0,
) -> PromotionSpec:
    """A promotion as the owner gave it (the API's body, the page's form): a setting its kind
    does not take, an unknown weekday or a malformed time is refused (422)."""
    if kind not in KINDS:
        raise MerchantError(f"A promotion's kind is one of {', '.join(KINDS)}.", status=422)
    given = {"factor": factor, "stamps": stamps, "days": days, "from": from_time,
             "to": to_time, "away_days": away_days}  # fmt: skip
    for name, value in given.items():
        if value is not None and name not in KIND_SETTINGS[kind]:
            takes = " or ".join(k for k, names in KIND_SETTINGS.items() if name in names)
            raise MerchantError(f"{name} is for a {takes} promotion, not a {kind}.", status=422)
    weekdays = EVERY_DAY
    if days is not None:
        try:
            weekdays = weekday_mask(days)
        except ValueError as exc:
            raise MerchantError(str(exc), status=422) from None
        if not weekdays:
            raise MerchantError("Choose at least one weekday, e.g. tue, wed, thu.", status=422)
    return PromotionSpec(
        kind=kind, title=title, program_id=program_id,
        factor=2 if factor is None else factor, stamps=1 if stamps is None else stamps,
        weekdays=weekdays,
        from_minute=None if from_time is None else parse_time(from_time),
        to_minute=None if to_time is None else parse_time(to_time),
        away_days=0 if away_days is None else away_days, starts_on=starts_on, ends_on=ends_on,
        budget=budget, holdout_percent=holdout_percent,
    )  # fmt: skip


def create_promotion(
    *, session: Session, merchant: Merchant, now: datetime, spec: PromotionSpec
) -> Promotion:
    assert merchant.id is not None
    if spec.kind not in KINDS:
        raise MerchantError(f"A promotion's kind is one of {', '.join(KINDS)}.", status=422)
    running = promotions(session=session, merchant=merchant)
    if sum(p.ended_at is None for p in running) >= MAX_PROMOTIONS:
        raise MerchantError(f"A shop runs at most {MAX_PROMOTIONS} promotions at once.", status=409)
    if spec.program_id is not None:
        program = get_program(session=session, merchant=merchant, program_id=spec.program_id)
        if program.closed_at is not None or program.archived_at is not None:
            raise MerchantError("This program has ended.", status=409)
    if (spec.from_minute is None) != (spec.to_minute is None):
        raise MerchantError("A time window needs both its start and its end.", status=422)
    if spec.from_minute is not None and spec.to_minute is not None:
        if spec.from_minute >= spec.to_minute:
            raise MerchantError("The time window must end after it starts.", status=422)
        if spec.kind != "multiplier":
            raise MerchantError("Only a multiplier runs at set hours.", status=422)
    if spec.starts_on and spec.ends_on and spec.ends_on < spec.starts_on:
        raise MerchantError("The promotion must end on or after its first day.", status=422)
    if spec.kind == "winback" and spec.away_days < 1:
        raise MerchantError("A win-back needs the days away (at least 1).", status=422)
    title = spec.title.strip() or DEFAULT_TITLES[spec.kind]
    promotion = validated(
        Promotion,
        {
            "merchant_id": merchant.id, "kind": spec.kind, "title": _text(title, "The title", 80),
            "program_id": spec.program_id, "factor": spec.factor, "stamps": spec.stamps,
            "weekdays": spec.weekdays, "from_minute": spec.from_minute,
            "to_minute": spec.to_minute, "away_days": spec.away_days,
            "starts_on": spec.starts_on, "ends_on": spec.ends_on, "budget": spec.budget,
            "holdout_percent": spec.holdout_percent, "holdout_key": secrets.token_hex(32),
            "created_at": now,
        },
    )  # fmt: skip
    session.add(promotion)
    session.flush()
    return promotion


def promotions(*, session: Session, merchant: Merchant) -> list[Promotion]:
    """The shop's promotions, running ones first, newest first."""
    query = select(Promotion).where(Promotion.merchant_id == merchant.id)
    found = list(session.exec(query).all())
    return sorted(found, key=lambda p: (p.ended_at is not None, -(p.id or 0)))


# A promotion's state on a shop-local day, in the order the owner's list shows them.
PROMOTION_STATES = ("running", "scheduled", "spent", "over", "ended")


def promotion_status(promotion: Promotion, today: date) -> str:
    """running; scheduled (starts later); spent (its budget is given out); over (past its last
    day); ended (by the owner)."""
    if promotion.ended_at is not None:
        return "ended"
    if promotion.ends_on is not None and promotion.ends_on < today:
        return "over"
    if promotion.budget and promotion.spent >= promotion.budget:
        return "spent"
    if promotion.starts_on is not None and promotion.starts_on > today:
        return "scheduled"
    return "running"


def promotion_public(promotion: Promotion, *, today: date, summary: str) -> PromotionPublic:
    """A promotion as the merchant's JSON API and the CLI show it: the settings its kind does
    not take are null; `summary` is the surface's plain words for it (app.web.loyalty_text)."""
    takes = KIND_SETTINGS.get(promotion.kind, ())
    settings = {
        "factor": promotion.factor, "stamps": promotion.stamps,
        "days": weekday_names(promotion.weekdays), "from": time_text(promotion.from_minute),
        "to": time_text(promotion.to_minute), "away_days": promotion.away_days,
    }  # fmt: skip
    return PromotionPublic.model_validate(
        {
            **{name: value if name in takes else None for name, value in settings.items()},
            "id": promotion.id, "kind": promotion.kind, "title": promotion.title,
            "program_id": promotion.program_id, "starts": promotion.starts_on,
            "ends": promotion.ends_on, "budget": promotion.budget, "spent": promotion.spent,
            "holdout_percent": promotion.holdout_percent,
            "status": promotion_status(promotion, today), "ended_at": promotion.ended_at,
            "summary": summary,
        }
    )  # fmt: skip


def promotions_by_state(
    *, session: Session, merchant: Merchant, today: date
) -> list[tuple[Promotion, str]]:
    """The shop's promotions with their states: running ones first, newest first in each."""
    found = [
        (p, promotion_status(p, today)) for p in promotions(session=session, merchant=merchant)
    ]
    return sorted(found, key=lambda pair: (PROMOTION_STATES.index(pair[1]), -(pair[0].id or 0)))


def local_today(merchant: Merchant, now: datetime) -> date:
    """The shop's local date now (promotion dates are the shop's days)."""
    return now.astimezone(merchant_zone(merchant)).date()


def get_promotion(*, session: Session, merchant: Merchant, promotion_id: int) -> Promotion:
    promotion = session.get(Promotion, promotion_id)
    if promotion is None or promotion.merchant_id != merchant.id:
        raise NotFound(f"No promotion {promotion_id} at {merchant.slug}.", code="unknown-promotion")
    return promotion


def end_promotion(
    *, session: Session, merchant: Merchant, promotion_id: int, now: datetime
) -> Promotion:
    """Stop a promotion now; the bonuses it gave stay (and stay countable)."""
    promotion = get_promotion(session=session, merchant=merchant, promotion_id=promotion_id)
    if promotion.ended_at is None:
        promotion.ended_at = now
        session.add(promotion)
        session.flush()
    return promotion
