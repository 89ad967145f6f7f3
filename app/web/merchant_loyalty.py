"""The merchant area's loyalty levers: the shop's programs (rules, reward levels, expiry; pause,
archive, close out), its regulars' tiers and its promotions. The shop's profile shares the
programs page, so its form is handled here too.

What an owner types is checked here first, with a message per field in the owner's language
and the form kept (422); the rules themselves are app.loyalty.service's, shared with the
merchant's JSON API and the CLI, and a refusal of theirs comes back as the form's notice. The
merchant comes from the owner's session; an id in a URL is looked up within it (404 otherwise).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from itertools import zip_longest
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session

from app.analytics.service import program_holding
from app.db import SessionDep
from app.dependencies import now_of, settings_of
from app.errors import NotFound
from app.inputs import Id, Text, parse_day
from app.loyalty import service as loyalty
from app.loyalty.models import KINDS, RewardLevel
from app.loyalty.rules import WEEKDAYS
from app.merchants import auth
from app.merchants import service as merchants
from app.merchants.exceptions import MerchantError
from app.merchants.models import Merchant, Program
from app.web import loyalty_text
from app.web.i18n import gettext as _
from app.web.i18n import ngettext
from app.web.merchant import FormText, OwnerForm, OwnerPost, page, see_other, visitors_language

router = APIRouter(include_in_schema=False, dependencies=[Depends(visitors_language)])

# A field that a form may send several times (the rows of the levels, the weekdays).
FormList = Annotated[list[Text] | None, Form()]


def _whole(text: str, low: int, high: int) -> int | None:
    """A whole number typed into a form, within [low, high]; None otherwise."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        return None
    value = int(text)
    return value if low <= value <= high else None


def _range_error(low: int, high: int) -> str:
    return _("Enter a whole number from %(low)s to %(high)s.") % {"low": low, "high": high}


def _too_long(limit: int) -> str:
    return _("At most %(n)s characters.") % {"n": limit}


def _length_errors(fields: Mapping[str, str], limits: Mapping[str, int]) -> dict[str, str]:
    """An error for each field typed longer than its limit."""
    return {name: _too_long(limit) for name, limit in limits.items() if len(fields[name]) > limit}


def _submit(
    post: OwnerPost,
    change: Callable[[], str],
    again: Callable[..., Response],
    *,
    invalid: bool,
    notice: str | None = None,
) -> Response:
    """The steps of every lever's form. A form that failed its own checks comes back (422) with
    its fields marked: again(status=, notice=) is its page. Otherwise change() makes the change
    and names the page to go on to. A refusal of the rules keeps nothing of the change, and the
    form comes back with the refusal as its notice."""
    if invalid:
        return again(status=422, notice=notice or _("Please correct the marked fields."))
    try:
        return see_other(change())
    except MerchantError as exc:
        post.write.rollback()
        return again(status=exc.status if 400 <= exc.status < 500 else 422, notice=exc.detail)


# --- programs ----------------------------------------------------------------------------------

PROGRAM_NUMBERS = {
    # field: (lowest, highest)
    "stamps_required": (1, 100),
    "max_stamps_per_scan": (1, 100),
    "cooldown_seconds": (0, 86_400),
    "daily_cap": (0, 1000),
    "expire_months": (0, 60),
}
PROGRAM_TEXTS = {"name": 120, "reward_text": 200}
NEW_PROGRAM = {
    "name": "", "reward_text": "", "stamps_required": "10", "max_stamps_per_scan": "10",
    "cooldown_seconds": "60", "daily_cap": "0", "expire_months": "0",
}  # fmt: skip
PROGRAM_ORDER = ("running", "paused", "archived", "closed")


@dataclass
class FormState:
    """A form as shown: its fields as typed (or stored), its errors by field, and for a
    program the rows of its reward levels."""

    fields: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    levels: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ProgramInput:
    """A program's form as posted and read: the form as shown again, and what
    loyalty.create_program and change_program take from it when it has no errors."""

    form: FormState
    settings: dict[str, Any]


def _level_rows(rows: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The levels' rows, filled up with empty ones: the form always offers every row."""
    kept = list(rows)[: loyalty.MAX_LEVELS]
    return kept + [{"stamps": "", "reward": ""} for _row in range(loyalty.MAX_LEVELS - len(kept))]


def _stored_form(program: Program, levels: Sequence[RewardLevel]) -> FormState:
    fields = {
        "name": program.name, "reward_text": program.reward_text,
        **{name: str(getattr(program, name)) for name in PROGRAM_NUMBERS},
    }  # fmt: skip
    rows = [{"stamps": str(level.stamps), "reward": level.reward_text} for level in levels]
    return FormState(fields, levels=_level_rows(rows))


def _read_levels(
    rows: Sequence[dict[str, str]], goal: int | None
) -> tuple[list[tuple[int, str]], dict[str, str]]:
    """The filled rows as (stamps, reward); errors keyed level_0 … by row."""
    levels: list[tuple[int, str]] = []
    errors: dict[str, str] = {}
    for i, row in enumerate(rows):
        text, reward = row["stamps"].strip(), " ".join(row["reward"].split())
        if not text and not reward:
            continue
        stamps = _whole(text, 1, 99)
        if not reward:
            errors[f"level_{i}"] = _("Say what this reward is, or leave both fields empty.")
        elif len(reward) > 200:
            errors[f"level_{i}"] = _too_long(200)
        elif stamps is None or (goal is not None and stamps >= goal):
            errors[f"level_{i}"] = _(
                "A reward level needs at least 1 stamp and fewer than the main reward."
            )
        elif stamps in {s for s, _r in levels}:
            errors[f"level_{i}"] = _("Two reward levels at the same number of stamps.")
        else:
            levels.append((stamps, reward))
    return levels, errors


def _read_program(
    fields: dict[str, str], level_stamps: Sequence[str], level_rewards: Sequence[str]
) -> ProgramInput:
    """The typed form, its numbers and its levels; the form's errors say what is wrong."""
    errors: dict[str, str] = {}
    numbers: dict[str, int] = {}
    # An empty expiry is "never": the field is new, and blank reads naturally as no expiry.
    fields["expire_months"] = fields.get("expire_months", "").strip() or "0"
    for name, (low, high) in PROGRAM_NUMBERS.items():
        value = _whole(fields.get(name, ""), low, high)
        if value is None:
            errors[name] = _range_error(low, high)
        else:
            numbers[name] = value
    if not fields["name"].strip():
        errors["name"] = _("The program needs a name.")
    if not fields["reward_text"].strip():
        errors["reward_text"] = _("Say what the reward is.")
    errors.update(_length_errors(fields, PROGRAM_TEXTS))
    pairs = zip_longest(level_stamps, level_rewards, fillvalue="")
    rows = [{"stamps": s, "reward": r} for s, r in pairs][: loyalty.MAX_LEVELS]
    levels, level_errors = _read_levels(rows, numbers.get("stamps_required"))
    errors.update(level_errors)
    settings = {"name": fields["name"], "reward_text": fields["reward_text"], "levels": levels,
                **numbers}  # fmt: skip
    return ProgramInput(FormState(fields, errors, _level_rows(rows)), settings)


def _posted_program(
    name: FormText = "",
    reward_text: FormText = "",
    stamps_required: FormText = "",
    max_stamps_per_scan: FormText = "",
    cooldown_seconds: FormText = "",
    daily_cap: FormText = "",
    expire_months: FormText = "",
    level_stamps: FormList = None,
    level_reward: FormList = None,
) -> ProgramInput:
    """The program form as posted, read: the same fields for a new program and a saved one."""
    fields = {
        "name": name, "reward_text": reward_text, "stamps_required": stamps_required,
        "max_stamps_per_scan": max_stamps_per_scan, "cooldown_seconds": cooldown_seconds,
        "daily_cap": daily_cap, "expire_months": expire_months,
    }  # fmt: skip
    return _read_program(fields, level_stamps or [], level_reward or [])


ProgramForm = Annotated[ProgramInput, Depends(_posted_program)]


def _profile_values(merchant: Merchant) -> dict[str, str]:
    return {
        "shop_name": merchant.name, "city": merchant.city, "category": merchant.category,
        "review_link": merchant.review_url, "locale": merchant.locale,
    }  # fmt: skip


def _program_page(
    request: Request,
    session: Session,
    merchant: Merchant,
    *,
    status: int = 200,
    notice: str | None = None,
    failed: tuple[int, FormState] | None = None,
    profile: dict[str, dict[str, str]] | None = None,
) -> HTMLResponse:
    items = []
    found = loyalty.programs(session=session, merchant=merchant)
    for program in sorted(found, key=lambda p: PROGRAM_ORDER.index(loyalty.program_status(p))):
        state = loyalty.program_status(program)
        levels = loyalty.levels_of(session=session, program=program)
        form = _stored_form(program, levels)
        if failed is not None and failed[0] == program.id:
            form = failed[1]
        items.append({
            "program": program, "status": state, "status_name": loyalty_text.status_name(state),
            "levels": levels, "form": form,
        })  # fmt: skip
    profile = profile or {"fields": _profile_values(merchant), "errors": {}}
    open_programs = sum(item["status"] != "closed" for item in items)
    return page(
        request, "merchant/program.html", status_code=status, merchant=merchant, programs=items,
        can_add=open_programs < loyalty.MAX_PROGRAMS, profile=profile, notice=notice,
    )  # fmt: skip


@router.get("/merchant/program")
def program_page(
    request: Request, merchant: auth.CurrentMerchant, session: SessionDep, done: str = ""
) -> HTMLResponse:
    notices = {
        "saved": _("The program was saved."),
        "created": _("The new program is running. The till offers it from its next scan."),
        "paused": _("The program is paused: the till adds no stamps until you resume it."),
        "resumed": _("The program is running again."),
        "archived": _(
            "The program is archived: no more stamps. Rewards already collected can still be "
            "redeemed until you close it out."
        ),
        "closed": _("The program is closed. Its outstanding stamps were booked out."),
        "profile": _("Your shop's details were saved."),
    }
    notice = notices.get(done)
    rescaled = request.query_params.get("rescaled", "")
    if done == "saved" and rescaled.isascii() and rescaled.isdigit() and int(rescaled):
        notice = ngettext(
            "The program was saved. %(n)s card had its stamps scaled up to the new goal.",
            "The program was saved. %(n)s cards had their stamps scaled up to the new goal.",
            int(rescaled),
        ) % {"n": int(rescaled)}
    return _program_page(request, session, merchant, notice=notice)


def _new_program_page(
    request: Request, merchant: Merchant, form: FormState, *, status: int = 200,
    notice: str | None = None,
) -> HTMLResponse:  # fmt: skip
    return page(
        request, "merchant/program_new.html", status_code=status, merchant=merchant, form=form,
        notice=notice,
    )  # fmt: skip


@router.get("/merchant/program/new")
def new_program_page(request: Request, merchant: auth.CurrentMerchant) -> HTMLResponse:
    form = FormState(dict(NEW_PROGRAM), levels=_level_rows([]))
    return _new_program_page(request, merchant, form)


@router.post("/merchant/program")
def create_program(post: OwnerForm, program: ProgramForm) -> Response:
    def create() -> str:
        made = loyalty.create_program(
            session=post.write, merchant=post.mine, now=post.now, **program.settings
        )
        return f"/merchant/program?done=created#program-{made.id}"

    again = partial(_new_program_page, post.request, post.merchant, program.form)
    return _submit(post, create, again, invalid=bool(program.form.errors))


@router.post("/merchant/program/{program_id}")
def save_program(program_id: Id, post: OwnerForm, program: ProgramForm) -> Response:
    # Another merchant's program is not found, before the form is even looked at.
    merchants.get_program(session=post.write, merchant=post.mine, program_id=program_id)

    def save() -> str:
        change = loyalty.change_program(
            session=post.write, merchant=post.mine, program_id=program_id, now=post.now,
            **program.settings,
        )  # fmt: skip
        return f"/merchant/program?done=saved&rescaled={change.rescaled_cards}"

    again = partial(_program_page, *post.page_parts, failed=(program_id, program.form))
    return _submit(post, save, again, invalid=bool(program.form.errors))


PROGRAM_DONE = {"pause": "paused", "resume": "resumed", "archive": "archived", "close": "closed"}


@router.post("/merchant/program/{program_id}/{action}")
def change_program_state(
    program_id: Id, action: str, post: OwnerForm, confirm: FormText = ""
) -> RedirectResponse:
    """Pause, resume, archive or close out a program (closing only from its confirmation page,
    which says what it books out)."""
    if action not in PROGRAM_DONE:
        raise NotFound("There is nothing at this address.")
    write, mine, now = post.write, post.mine, post.now
    if action in ("pause", "resume"):
        merchants.set_program_active(
            session=write, merchant=mine, program_id=program_id, active=action == "resume"
        )
    elif action == "archive":
        loyalty.archive_program(session=write, merchant=mine, program_id=program_id, now=now)
    elif confirm != "yes":
        merchants.get_program(session=write, merchant=mine, program_id=program_id)
        return see_other(f"/merchant/program/{program_id}/close")
    else:
        loyalty.close_program(session=write, merchant=mine, program_id=program_id, now=now)
    return see_other(f"/merchant/program?done={PROGRAM_DONE[action]}")


def _holding_text(cards: int, stamps: int, k: int) -> str:
    """What a close-out books out, in as much detail as the dashboard would show: a figure
    about fewer than k cards is not given."""
    if cards == 0:
        return _("No card holds stamps in this program: closing it books nothing out.")
    if cards < k:
        return _("Fewer than %(k)s cards hold stamps in this program.") % {"k": k}
    return ngettext(
        "%(n)s card holds stamps in this program, %(stamps)s in all.",
        "%(n)s cards hold stamps in this program, %(stamps)s in all.",
        cards,
    ) % {"n": cards, "stamps": stamps}


@router.get("/merchant/program/{program_id}/close")
def close_program_page(
    request: Request, program_id: Id, merchant: auth.CurrentMerchant, session: SessionDep
) -> Response:
    program = merchants.get_program(session=session, merchant=merchant, program_id=program_id)
    if loyalty.program_status(program) != "archived":
        return see_other(f"/merchant/program#program-{program_id}")
    cards, stamps = program_holding(
        session=session, merchant_id=merchant.id or 0, program_id=program_id
    )
    holding = _holding_text(cards, stamps, settings_of(request).k_anonymity)
    return page(
        request, "merchant/program_close.html", merchant=merchant, program=program,
        holding=holding,
    )  # fmt: skip


def _profile_errors(values: dict[str, str]) -> dict[str, str]:
    """What is wrong with the profile form, by field, in the owner's words."""
    errors = {}
    if not values["shop_name"].strip():
        errors["shop_name"] = _("Your shop needs a name.")
    try:
        merchants.review_url_from(values["review_link"])
    except MerchantError:
        errors["review_link"] = _(
            "Enter a Google Place ID (like ChIJN1t_tDeuEmsRUsoyG83frY4) "
            "or an address that starts with https://."
        )
    return errors | _length_errors(values, {"shop_name": 120, "city": 80, "category": 80})


@router.post("/merchant/profile")
def save_profile(
    post: OwnerForm,
    shop_name: FormText = "",
    city: FormText = "",
    category: FormText = "",
    review_link: FormText = "",
    locale: FormText = "",
) -> Response:
    values = {"shop_name": shop_name, "city": city, "category": category,
              "review_link": review_link, "locale": locale}  # fmt: skip
    errors = _profile_errors(values)

    def save() -> str:
        merchants.update_profile(
            session=post.write, merchant=post.mine, name=shop_name, city=city,
            category=category, review_link=review_link, locale=locale,
        )  # fmt: skip
        return "/merchant/program?done=profile#profile"

    again = partial(_program_page, *post.page_parts, profile={"fields": values, "errors": errors})
    return _submit(post, save, again, invalid=bool(errors) or locale not in ("de", "en"))


# --- regulars' tiers ---------------------------------------------------------------------------

TIER_NUMBERS = {"lifetime_stamps": (1, 100_000), "bonus_per_visit": (0, 10)}
NEW_TIER = {"name": "", "lifetime_stamps": "", "bonus_per_visit": "0", "perk": ""}


def _regulars_page(
    request: Request,
    session: Session,
    merchant: Merchant,
    *,
    status: int = 200,
    notice: str | None = None,
    tier_form: FormState | None = None,
    lapse: tuple[str, str | None] | None = None,
) -> HTMLResponse:
    tiers = loyalty.tiers(session=session, merchant=merchant)
    rows = [{"tier": tier, "text": loyalty_text.tier_text(tier)} for tier in tiers]
    lapse = lapse or (str(merchant.tier_lapse_months), None)
    return page(
        request, "merchant/regulars.html", status_code=status, merchant=merchant, tiers=rows,
        can_add=len(tiers) < loyalty.MAX_TIERS,
        tier_form=tier_form or FormState(dict(NEW_TIER)),
        lapse_months=lapse[0], lapse_error=lapse[1], notice=notice,
    )  # fmt: skip


@router.get("/merchant/regulars")
def regulars_page(
    request: Request, merchant: auth.CurrentMerchant, session: SessionDep, done: str = ""
) -> HTMLResponse:
    notices = {
        "created": _("The tier was added. Cards that reach it show it from their next visit."),
        "deleted": _("The tier was removed. Cards keep their stamps."),
        "lapse": _("Saved: when regulars' status lapses."),
    }
    return _regulars_page(request, session, merchant, notice=notices.get(done))


def _read_tier(fields: dict[str, str], existing: Sequence[Any]) -> dict[str, str]:
    errors = {}
    for name, (low, high) in TIER_NUMBERS.items():
        if _whole(fields[name], low, high) is None:
            errors[name] = _range_error(low, high)
    stamps = _whole(fields["lifetime_stamps"], 1, 100_000)
    if stamps is not None and any(t.lifetime_stamps == stamps for t in existing):
        errors["lifetime_stamps"] = _("There is a tier at %(n)s stamps already.") % {"n": stamps}
    if not fields["name"].strip():
        errors["name"] = _("The tier needs a name, e.g. Regular.")
    return errors | _length_errors(fields, {"name": 60, "perk": 200})


@router.post("/merchant/regulars")
def create_tier(
    post: OwnerForm,
    name: FormText = "",
    lifetime_stamps: FormText = "",
    bonus_per_visit: FormText = "",
    perk: FormText = "",
) -> Response:
    fields = {"name": name, "lifetime_stamps": lifetime_stamps,
              "bonus_per_visit": bonus_per_visit.strip() or "0", "perk": perk}  # fmt: skip
    errors = _read_tier(fields, loyalty.tiers(session=post.write, merchant=post.mine))

    def create() -> str:
        loyalty.create_tier(
            session=post.write, merchant=post.mine, now=post.now, name=name,
            lifetime_stamps=int(lifetime_stamps), bonus_per_visit=int(fields["bonus_per_visit"]),
            perk_text=perk,
        )  # fmt: skip
        return "/merchant/regulars?done=created"

    again = partial(_regulars_page, *post.page_parts, tier_form=FormState(fields, errors))
    return _submit(post, create, again, invalid=bool(errors))


@router.post("/merchant/regulars/lapse")
def save_tier_lapse(post: OwnerForm, months: FormText = "") -> Response:
    value = _whole(months.strip() or "0", 0, 60)

    def save() -> str:
        assert value is not None
        loyalty.set_tier_lapse(session=post.write, merchant=post.mine, months=value)
        return "/merchant/regulars?done=lapse"

    again = partial(_regulars_page, *post.page_parts, lapse=(months, _range_error(0, 60)))
    return _submit(post, save, again, invalid=value is None)


@router.post("/merchant/regulars/{tier_id}/delete")
def delete_tier(tier_id: Id, post: OwnerForm) -> RedirectResponse:
    loyalty.delete_tier(session=post.write, merchant=post.mine, tier_id=tier_id)
    return see_other("/merchant/regulars?done=deleted")


# --- promotions ----------------------------------------------------------------------------------

PROMOTION_NUMBERS = {
    "factor": (2, 5),
    "stamps": (1, 20),
    "away_days": (1, 3650),
    "budget": (0, 10_000_000),
    "holdout_percent": (0, 50),
}
# Blank means "none" for these: no limit, nobody held out.
BLANK_IS_ZERO = ("budget", "holdout_percent")
PROMOTION_FIELDS = ("kind", "title", "program_id", "factor", "stamps", "from", "to",
                    "away_days", "starts", "ends", "budget", "holdout_percent")  # fmt: skip


@dataclass
class PromotionForm:
    """A promotion's form as shown (fields as typed, the ticked weekdays, errors by field), and
    the promotion it describes when it has no errors."""

    fields: dict[str, str]
    days: list[str]
    errors: dict[str, str]
    spec: loyalty.PromotionSpec | None


def _new_promotion(kind: str, merchant: Merchant) -> dict[str, str]:
    return {
        "kind": kind, "title": loyalty_text.default_title(kind, merchant.locale), "program_id": "",
        "factor": "2", "stamps": "1", "from": "", "to": "", "away_days": "30", "starts": "",
        "ends": "", "budget": "0", "holdout_percent": "0",
    }  # fmt: skip


def _open_programs(session: Session, merchant: Merchant) -> list[Program]:
    """The programs a new promotion may be limited to: those that still take stamps."""
    found = loyalty.programs(session=session, merchant=merchant)
    return [p for p in found if loyalty.program_status(p) in ("running", "paused")]


def _read_times(fields: dict[str, str], errors: dict[str, str]) -> tuple[str | None, str | None]:
    start, end = fields["from"].strip(), fields["to"].strip()
    if not start and not end:
        return None, None
    if not start or not end:
        errors["from" if not start else "to"] = _("Give both times, or neither for all day.")
        return None, None
    minutes = []
    for name, text in (("from", start), ("to", end)):
        try:
            minutes.append(loyalty.parse_time(text))
        except MerchantError:
            errors[name] = _("Enter a time like 14:00.")
    if len(minutes) == 2 and minutes[1] <= minutes[0]:
        errors["to"] = _("The end must come after the start.")
    return start, end


def _read_dates(fields: dict[str, str], errors: dict[str, str]) -> tuple[date | None, date | None]:
    first, last = (parse_day(fields[name].strip()) if fields[name].strip() else None
                   for name in ("starts", "ends"))  # fmt: skip
    for name, day in (("starts", first), ("ends", last)):
        if fields[name].strip() and day is None:
            errors[name] = _("Enter a date.")
    if first and last and last < first:
        errors["ends"] = _("The last day cannot come before the first.")
    return first, last


def _read_promotion(
    fields: dict[str, str], days: Sequence[str], programs: Sequence[Program], merchant: Merchant
) -> PromotionForm:
    """The promotion a form describes: only the settings of its kind are read. Without a
    title it is called by its kind, in the shop's language (its customers read it)."""
    kind = fields["kind"] if fields["kind"] in KINDS else "multiplier"
    fields["kind"] = kind
    takes = loyalty.KIND_SETTINGS[kind]
    errors: dict[str, str] = {}
    numbers: dict[str, int | None] = {}
    for name, (low, high) in PROMOTION_NUMBERS.items():
        if name in BLANK_IS_ZERO:
            fields[name] = fields[name].strip() or "0"
        elif name not in takes:
            continue
        numbers[name] = _whole(fields[name], low, high)
        if numbers[name] is None:
            errors[name] = _range_error(low, high)
    chosen = [d for d in WEEKDAYS if d in days]
    if "days" in takes and not chosen:
        errors["days"] = _("Choose at least one day.")
    start, end = _read_times(fields, errors) if "from" in takes else (None, None)
    first, last = _read_dates(fields, errors)
    title = " ".join(fields["title"].split()) or loyalty_text.default_title(kind, merchant.locale)
    if len(title) > 80:
        errors["title"] = _too_long(80)
    program_id = None
    if fields["program_id"].strip():
        program_id = next((p.id for p in programs if str(p.id) == fields["program_id"]), None)
        if program_id is None:
            errors["program_id"] = _("Choose one of your programs that still take stamps.")
    if errors:
        return PromotionForm(fields, chosen, errors, None)
    try:
        spec = loyalty.promotion_spec(
            kind=kind, title=title, program_id=program_id, factor=numbers.get("factor"),
            stamps=numbers.get("stamps"), days=chosen if "days" in takes else None,
            from_time=start, to_time=end, away_days=numbers.get("away_days"), starts_on=first,
            ends_on=last, budget=numbers["budget"] or 0,
            holdout_percent=numbers["holdout_percent"] or 0,
        )  # fmt: skip
    except MerchantError as exc:
        return PromotionForm(fields, chosen, {"form": exc.detail}, None)
    return PromotionForm(fields, chosen, {}, spec)


def _summary(
    form: PromotionForm, programs: Sequence[Program], merchant: Merchant, now: datetime
) -> str:
    if form.spec is None:
        return ""
    names = {p.id: p.name for p in programs}
    today = loyalty.local_today(merchant, now)
    program = names.get(form.spec.program_id) if form.spec.program_id else None
    return loyalty_text.promotion_summary(form.spec, today=today, program=program)


def _promotion_form_page(
    request: Request,
    session: Session,
    merchant: Merchant,
    form: PromotionForm,
    *,
    status: int = 200,
    notice: str | None = None,
) -> HTMLResponse:
    programs = _open_programs(session, merchant)
    kind = form.fields["kind"]
    return page(
        request, "merchant/promotion_new.html", status_code=status, merchant=merchant,
        form=form, kind=kind, kind_name=loyalty_text.kind_name(kind),
        kind_hint=loyalty_text.kind_hint(kind), takes=loyalty.KIND_SETTINGS[kind],
        programs=programs, weekdays=_weekday_choices(),
        preview=_summary(form, programs, merchant, now_of(request)), notice=notice,
    )  # fmt: skip


def _weekday_choices() -> list[tuple[str, str]]:
    names = (_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun"))
    return list(zip(WEEKDAYS, names, strict=True))


@router.get("/merchant/promotions")
def promotions_page(
    request: Request, merchant: auth.CurrentMerchant, session: SessionDep, done: str = ""
) -> HTMLResponse:
    notices = {
        "created": _("The promotion was saved. The till applies it from the next stamp on."),
        "ended": _("The promotion was ended. The bonus stamps it gave stay on the cards."),
    }
    today = loyalty.local_today(merchant, now_of(request))
    names = {p.id: p.name for p in loyalty.programs(session=session, merchant=merchant)}
    rows = [
        {
            "promotion": p, "status": state, "status_name": loyalty_text.status_name(state),
            "kind_name": loyalty_text.kind_name(p.kind),
            "summary": loyalty_text.promotion_summary(
                p, today=today, program=names.get(p.program_id) if p.program_id else None
            ),
            "spent": loyalty_text.spent_text(p.spent, p.budget),
        }
        for p, state in loyalty.promotions_by_state(session=session, merchant=merchant, today=today)
    ]  # fmt: skip
    kinds = [{"kind": k, "name": loyalty_text.kind_name(k), "hint": loyalty_text.kind_hint(k)}
             for k in KINDS]  # fmt: skip
    return page(
        request, "merchant/promotions.html", merchant=merchant, promotions=rows, kinds=kinds,
        notice=notices.get(done),
    )  # fmt: skip


@router.get("/merchant/promotions/new")
def new_promotion_page(
    request: Request, merchant: auth.CurrentMerchant, session: SessionDep, kind: str = ""
) -> HTMLResponse:
    kind = kind if kind in KINDS else "multiplier"
    programs = _open_programs(session, merchant)
    form = _read_promotion(_new_promotion(kind, merchant), list(WEEKDAYS), programs, merchant)
    return _promotion_form_page(request, session, merchant, form)


def _query_fields(query: Mapping[str, str]) -> dict[str, str]:
    return {name: query.get(name, "") for name in PROMOTION_FIELDS}


@router.get("/merchant/promotions/preview")
def promotion_preview(
    request: Request, merchant: auth.CurrentMerchant, session: SessionDep
) -> JSONResponse:
    """The new-promotion form's sentence while the owner types (its script asks): the same
    words the list and the API will use. `summary` is empty while a field is wrong."""
    programs = _open_programs(session, merchant)
    query = request.query_params
    form = _read_promotion(_query_fields(query), query.getlist("days"), programs, merchant)
    return JSONResponse(
        {"summary": _summary(form, programs, merchant, now_of(request)), "errors": form.errors},
        headers={"Cache-Control": "no-store"},
    )


@router.post("/merchant/promotions")
def create_promotion(
    post: OwnerForm,
    kind: FormText = "",
    title: FormText = "",
    program_id: FormText = "",
    factor: FormText = "",
    stamps: FormText = "",
    days: FormList = None,
    from_: Annotated[Text, Form(alias="from")] = "",
    to: FormText = "",
    away_days: FormText = "",
    starts: FormText = "",
    ends: FormText = "",
    budget: FormText = "",
    holdout_percent: FormText = "",
) -> Response:
    fields = {
        "kind": kind, "title": title, "program_id": program_id, "factor": factor,
        "stamps": stamps, "from": from_, "to": to, "away_days": away_days, "starts": starts,
        "ends": ends, "budget": budget, "holdout_percent": holdout_percent,
    }  # fmt: skip
    form = _read_promotion(fields, days or [], _open_programs(post.write, post.mine), post.mine)
    spec = form.spec

    def create() -> str:
        assert spec is not None
        loyalty.create_promotion(session=post.write, merchant=post.mine, now=post.now, spec=spec)
        return "/merchant/promotions?done=created"

    again = partial(_promotion_form_page, *post.page_parts, form)
    return _submit(post, create, again, invalid=spec is None, notice=form.errors.get("form"))


@router.post("/merchant/promotions/{promotion_id}/end")
def end_promotion(promotion_id: Id, post: OwnerForm) -> RedirectResponse:
    loyalty.end_promotion(
        session=post.write, merchant=post.mine, promotion_id=promotion_id, now=post.now
    )
    return see_other("/merchant/promotions?done=ended")
