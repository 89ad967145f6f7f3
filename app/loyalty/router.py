"""The merchant's JSON API for the loyalty levers (the owner's session): programs and their
reward levels, tiers, promotions. The rules are app.loyalty.service's, the same for the
merchant area and the CLI; a promotion's `summary` is the merchant area's wording.

Every write must be sent with `Content-Type: application/json`, also one without a body
(pause, archive, delete, …): 415 otherwise. The owner's session cookie goes along with any
request the browser makes to treu, also one a page elsewhere starts; such a page can send a
form or a body-less request, but JSON only after a CORS preflight, which treu never answers.
That is what keeps these routes safe without the merchant area's form tokens.
"""

from datetime import date, datetime
from enum import Enum
from typing import TypeVar

from fastapi import APIRouter, Depends, Request, Response
from sqlmodel import Session

from app.db import SessionDep, WriteSessionDep
from app.dependencies import ClockDep
from app.errors import UnsupportedMediaType, is_json, problem_responses
from app.inputs import Id
from app.loyalty import service
from app.loyalty.models import Promotion
from app.loyalty.schemas import (
    LevelsUpdate,
    ProgramCreate,
    ProgramPublic,
    ProgramUpdate,
    PromotionCreate,
    PromotionPublic,
    TierCreate,
    TierLapse,
    TierList,
    TierPublic,
)
from app.merchants import auth
from app.merchants import service as merchants
from app.merchants.auth import CurrentMerchant
from app.merchants.models import Merchant
from app.web import i18n
from app.web.loyalty_text import default_title, promotion_summary

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def json_writes(request: Request) -> None:
    """415 for a write that does not say it is JSON, before the login is looked at. Without
    any Content-Type a write is refused only when it carries the owner's cookie (without one
    the login check answers 401: there is no session to misuse)."""
    if request.method not in WRITES:
        return
    content_type = request.headers.get("content-type")
    if content_type is None:
        if auth.SESSION_COOKIE in request.cookies:
            raise UnsupportedMediaType()
    elif not is_json(content_type):
        raise UnsupportedMediaType()


async def _language(request: Request) -> None:
    # A coroutine, so the routes (run in a worker thread) see the language it sets.
    i18n.activate(i18n.choose_language(request))


router = APIRouter(
    prefix="/api/v1/merchant",
    responses=problem_responses(401, 404, 413, 422),
    dependencies=[Depends(json_writes), Depends(_language)],
)
PROGRAMS: list[str | Enum] = ["merchant programs"]
TIERS: list[str | Enum] = ["merchant tiers"]
PROMOTIONS: list[str | Enum] = ["merchant promotions"]
# A write also answers these: a conflict with the state, a body (or none) not sent as JSON.
CHANGES = problem_responses(409, 415)


T = TypeVar("T")


def _kept(new: T | None, old: T) -> T:
    """A PATCH's value, or the old one where the body left it out."""
    return old if new is None else new


def _mine(write: Session, merchant: Merchant) -> Merchant:
    """The owner's merchant, loaded in the write session (the one the change commits in)."""
    mine = write.get(Merchant, merchant.id)
    assert mine is not None
    return mine


# --- programs ----------------------------------------------------------------------------------


@router.get("/programs", response_model=list[ProgramPublic], tags=PROGRAMS)
def list_programs(session: SessionDep, merchant: CurrentMerchant) -> list[ProgramPublic]:
    """Every program of the logged-in owner's shop, closed ones included, with its levels."""
    return [
        service.program_public(session=session, program=p)
        for p in service.programs(session=session, merchant=merchant)
    ]


@router.post(
    "/programs", status_code=201, response_model=ProgramPublic, tags=PROGRAMS,
    responses=CHANGES,
)  # fmt: skip
def create_program(
    body: ProgramCreate, write: WriteSessionDep, merchant: CurrentMerchant, clock: ClockDep
) -> ProgramPublic:
    """Start another program (e.g. a lunch card beside the coffee card), with reward levels
    below its main reward. 409 when the shop runs 8 programs already."""
    program = service.create_program(
        session=write, merchant=_mine(write, merchant), now=clock(), name=body.name,
        stamps_required=body.stamps_required, reward_text=body.reward,
        levels=[(lv.stamps, lv.reward) for lv in body.levels],
        max_stamps_per_scan=body.max_stamps_per_scan, cooldown_seconds=body.cooldown_seconds,
        daily_cap=body.daily_cap, expire_months=body.expire_months,
    )  # fmt: skip
    return service.program_public(session=write, program=program)


@router.patch(
    "/programs/{program_id}", response_model=ProgramPublic, tags=PROGRAMS, responses=CHANGES
)
def update_program(
    program_id: Id,
    body: ProgramUpdate,
    write: WriteSessionDep,
    merchant: CurrentMerchant,
    clock: ClockDep,
) -> ProgramPublic:
    """Change a program's rules; what the body leaves out stays. Nobody loses stamps: a higher
    `stamps_required` scales every card's stamps up in proportion."""
    mine = _mine(write, merchant)
    program = merchants.get_program(session=write, merchant=mine, program_id=program_id)
    service.change_program(
        session=write, merchant=mine, program_id=program_id, now=clock(),
        name=_kept(body.name, program.name),
        stamps_required=_kept(body.stamps_required, program.stamps_required),
        reward_text=_kept(body.reward, program.reward_text),
        max_stamps_per_scan=_kept(body.max_stamps_per_scan, program.max_stamps_per_scan),
        cooldown_seconds=_kept(body.cooldown_seconds, program.cooldown_seconds),
        daily_cap=_kept(body.daily_cap, program.daily_cap),
        expire_months=_kept(body.expire_months, program.expire_months),
    )  # fmt: skip
    return service.program_public(session=write, program=program)


@router.put(
    "/programs/{program_id}/levels", response_model=ProgramPublic, tags=PROGRAMS,
    responses=CHANGES,
)  # fmt: skip
def set_levels(
    program_id: Id,
    body: LevelsUpdate,
    write: WriteSessionDep,
    merchant: CurrentMerchant,
    clock: ClockDep,
) -> ProgramPublic:
    """Replace the program's reward levels (at most 5, each below its main reward). A level
    that keeps its stamps keeps its id, so a till about to redeem it still can."""
    mine = _mine(write, merchant)
    program = merchants.get_program(session=write, merchant=mine, program_id=program_id)
    service.set_levels(
        session=write, merchant=mine, program=program, now=clock(),
        levels=[(lv.stamps, lv.reward) for lv in body.levels],
    )  # fmt: skip
    return service.program_public(session=write, program=program)


def _program_action(action: str, description: str) -> None:
    """POST /programs/{id}/pause|resume|archive|close: one change of a program's status."""

    def change(
        program_id: Id, write: WriteSessionDep, merchant: CurrentMerchant, clock: ClockDep
    ) -> ProgramPublic:
        program, _cards = service.change_program_state(
            session=write, merchant=_mine(write, merchant), program_id=program_id,
            action=action, now=clock(),
        )  # fmt: skip
        return service.program_public(session=write, program=program)

    router.post(
        f"/programs/{{program_id}}/{action}", response_model=ProgramPublic, tags=PROGRAMS,
        responses=CHANGES, name=f"{action}_program", description=description,
    )(change)  # fmt: skip


_program_action(
    "pause",
    "Stop stamping for now; collected stamps and due rewards stay redeemable. No body needed, "
    "but Content-Type: application/json.",
)
_program_action(
    "resume",
    "Stamp in a paused program again (409 for an archived one). Content-Type: "
    "application/json, no body needed.",
)
_program_action(
    "archive",
    "End a program: no more stamps (409 `program-ended` at the till); its history stays and "
    "its rewards stay redeemable until it is closed. Content-Type: application/json.",
)
_program_action(
    "close",
    "Close an archived program out (409 if it is not archived): the stamps cards still hold "
    "in it are booked out, and cards no longer show it. Cannot be undone. Content-Type: "
    "application/json.",
)


# --- tiers ---------------------------------------------------------------------------------------


@router.get("/tiers", response_model=TierList, tags=TIERS)
def list_tiers(session: SessionDep, merchant: CurrentMerchant) -> TierList:
    """The shop's regulars' tiers, lowest first, and when status lapses."""
    return TierList(
        tiers=[service.tier_public(t) for t in service.tiers(session=session, merchant=merchant)],
        lapse_months=merchant.tier_lapse_months,
    )


@router.post("/tiers", status_code=201, response_model=TierPublic, tags=TIERS, responses=CHANGES)
def create_tier(
    body: TierCreate, write: WriteSessionDep, merchant: CurrentMerchant, clock: ClockDep
) -> TierPublic:
    """A status from the stamps a card collected at the shop (redemptions never lower it), with
    its perk: extra stamps per visit and/or a text the cashier sees. At most 5 tiers."""
    tier = service.create_tier(
        session=write, merchant=_mine(write, merchant), now=clock(), name=body.name,
        lifetime_stamps=body.lifetime_stamps, bonus_per_visit=body.bonus_per_visit,
        perk_text=body.perk,
    )  # fmt: skip
    return service.tier_public(tier)


@router.put("/tiers/lapse", response_model=TierLapse, tags=TIERS, responses=CHANGES)
def set_tier_lapse(body: TierLapse, write: WriteSessionDep, merchant: CurrentMerchant) -> TierLapse:
    """Whether status lapses after months without a visit (0: never)."""
    mine = service.set_tier_lapse(
        session=write, merchant=_mine(write, merchant), months=body.months
    )
    return TierLapse(months=mine.tier_lapse_months)


@router.delete("/tiers/{tier_id}", status_code=204, tags=TIERS, responses=CHANGES)
def delete_tier(tier_id: Id, write: WriteSessionDep, merchant: CurrentMerchant) -> Response:
    """Remove a tier: cards keep their stamps, only the status and its perk go.
    Content-Type: application/json, no body needed."""
    service.delete_tier(session=write, merchant=_mine(write, merchant), tier_id=tier_id)
    return Response(status_code=204)


# --- promotions ----------------------------------------------------------------------------------


def _promotion_out(promotion: Promotion, today: date, names: dict[int, str]) -> PromotionPublic:
    program = names.get(promotion.program_id) if promotion.program_id else None
    summary = promotion_summary(promotion, today=today, program=program)
    return service.promotion_public(promotion, today=today, summary=summary)


def _names(session: Session, merchant: Merchant) -> dict[int, str]:
    return {p.id or 0: p.name for p in service.programs(session=session, merchant=merchant)}


def _promotion_now(
    write: Session, merchant: Merchant, promotion: Promotion, now: datetime
) -> PromotionPublic:
    """A promotion just changed, as the shop's day `now` shows it."""
    today = service.local_today(merchant, now)
    return _promotion_out(promotion, today, _names(write, merchant))


@router.get("/promotions", response_model=list[PromotionPublic], tags=PROMOTIONS)
def list_promotions(
    session: SessionDep, merchant: CurrentMerchant, clock: ClockDep
) -> list[PromotionPublic]:
    """The shop's promotions, running ones first, each with its `summary` in plain words (in
    the language of Accept-Language, English by default) and the bonus stamps `spent`."""
    today = service.local_today(merchant, clock())
    names = _names(session, merchant)
    found = service.promotions_by_state(session=session, merchant=merchant, today=today)
    return [_promotion_out(p, today, names) for p, _status in found]


@router.post(
    "/promotions", status_code=201, response_model=PromotionPublic, tags=PROMOTIONS,
    responses=CHANGES,
)  # fmt: skip
def create_promotion(
    body: PromotionCreate, write: WriteSessionDep, merchant: CurrentMerchant, clock: ClockDep
) -> PromotionPublic:
    """Start a promotion: its bonus stamps are added at stamp time and booked as their own
    ledger entries. A setting its kind does not take is refused (422)."""
    mine, now = _mine(write, merchant), clock()
    # Without a title it is called by its kind, in the shop's language: customers read it.
    title = body.title.strip() or default_title(body.kind, mine.locale)
    spec = service.promotion_spec(
        kind=body.kind, title=title, program_id=body.program_id, factor=body.factor,
        stamps=body.stamps, days=body.days, from_time=body.from_, to_time=body.to,
        away_days=body.away_days, starts_on=body.starts, ends_on=body.ends, budget=body.budget,
        holdout_percent=body.holdout_percent,
    )  # fmt: skip
    promotion = service.create_promotion(session=write, merchant=mine, now=now, spec=spec)
    return _promotion_now(write, mine, promotion, now)


@router.post(
    "/promotions/{promotion_id}/end", response_model=PromotionPublic, tags=PROMOTIONS,
    responses=CHANGES,
)  # fmt: skip
def end_promotion(
    promotion_id: Id, write: WriteSessionDep, merchant: CurrentMerchant, clock: ClockDep
) -> PromotionPublic:
    """Stop a promotion now; the bonuses it gave stay (and stay countable). Content-Type:
    application/json, no body needed."""
    mine, now = _mine(write, merchant), clock()
    promotion = service.end_promotion(
        session=write, merchant=mine, promotion_id=promotion_id, now=now
    )
    return _promotion_now(write, mine, promotion, now)
