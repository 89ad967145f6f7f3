"""Merchants, programs, owners and devices: created by the CLI, used by every other domain."""

import hashlib
import re
import secrets
import threading
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import nacl.pwhash
from pydantic import ValidationError
from sqlmodel import Session, SQLModel, col, select
from zxcvbn import zxcvbn

from app.errors import NotFound
from app.ledger import service as ledger
from app.merchants.exceptions import DeviceRevoked, MerchantError, UnknownDevice
from app.merchants.models import Device, Merchant, Owner, Program, ProgramBase

DEVICE_SECRET_PREFIX = "treu_dev_"

M = TypeVar("M", bound=SQLModel)


@dataclass(frozen=True)
class NewMerchant:
    merchant: Merchant
    program: Program
    owner_email: str
    owner_password: str


def validated(model: type[M], values: dict[str, Any]) -> M:
    """`values` as a `model`, or the first thing wrong with them as a 422 ("field: why").

    The limits are the model's, so the merchant area, the JSON API, the CLI and the demo obey
    the same ones (a table model validates only this way, not when it is constructed)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise MerchantError(f"{where}: {first['msg']}", status=422) from None


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:48] or "shop"


def _free_slug(session: Session, wanted: str) -> str:
    slug, n = wanted, 2
    while session.exec(select(Merchant.id).where(Merchant.slug == slug)).first() is not None:
        slug, n = f"{wanted}-{n}", n + 1
    return slug


def hash_password(password: str) -> str:
    return nacl.pwhash.argon2id.str(password.encode()).decode()


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return bool(nacl.pwhash.verify(password_hash.encode(), password.encode()))
    except Exception:
        return False


def new_password() -> str:
    # Four groups of lower-case letters and digits: easy to read out, ~80 bits.
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


def create_merchant(
    *,
    session: Session,
    name: str,
    stamps_required: int,
    reward: str,
    now: datetime,
    slug: str | None = None,
    cooldown_seconds: int = 60,
    max_stamps_per_scan: int = 10,
    daily_cap: int = 0,
    city: str = "",
    category: str = "",
    review_url: str = "",
    owner_email: str | None = None,
    owner_password: str | None = None,
) -> NewMerchant:
    """Create a merchant with its first program and its owner login."""
    if not name.strip():
        raise MerchantError("A merchant needs a name.")
    rules = validated(
        ProgramBase,
        {
            "name": f"{stamps_required} stamps", "stamps_required": stamps_required,
            "reward_text": reward, "cooldown_seconds": cooldown_seconds,
            "max_stamps_per_scan": max_stamps_per_scan, "daily_cap": daily_cap,
        },
    )  # fmt: skip
    if slug is not None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", slug):
            raise MerchantError("A slug is lower-case letters, digits and hyphens.")
        if session.exec(select(Merchant.id).where(Merchant.slug == slug)).first() is not None:
            raise MerchantError(f"The slug {slug!r} is taken.", status=409)
    else:
        slug = _free_slug(session, slugify(name))
    merchant = Merchant(
        slug=slug, name=name.strip(), city=city, category=category,
        review_url=review_url_from(review_url), created_at=now,
    )  # fmt: skip
    session.add(merchant)
    session.flush()
    assert merchant.id is not None
    program = Program(**rules.model_dump(), merchant_id=merchant.id, created_at=now)
    email = (owner_email or f"owner@{slug}.example").lower()
    if session.exec(select(Owner.id).where(Owner.email == email)).first() is not None:
        raise MerchantError(f"An owner with the e-mail {email} exists already.", status=409)
    password = owner_password or new_password()
    owner = Owner(
        merchant_id=merchant.id, email=email, password_hash=hash_password(password),
        created_at=now,
    )  # fmt: skip
    session.add_all([program, owner])
    session.flush()
    return NewMerchant(merchant, program, email, password)


def get_merchant(*, session: Session, slug: str) -> Merchant:
    merchant = session.exec(select(Merchant).where(Merchant.slug == slug)).first()
    if merchant is None:
        raise NotFound(f"No merchant with the slug {slug!r}.")
    return merchant


def hash_device_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_device(
    *, session: Session, merchant: Merchant, now: datetime, label: str = ""
) -> tuple[Device, str]:
    """Create a cashier device; the secret is returned once and stored only hashed."""
    assert merchant.id is not None
    secret = DEVICE_SECRET_PREFIX + secrets.token_urlsafe(24)  # 192 bits
    count = len(session.exec(select(Device.id).where(Device.merchant_id == merchant.id)).all())
    device = Device(
        merchant_id=merchant.id,
        label=label or f"Till {count + 1}",
        secret_hash=hash_device_secret(secret),
        created_at=now,
    )
    session.add(device)
    session.flush()
    return device, secret


def list_devices(*, session: Session, merchant: Merchant) -> list[Device]:
    query = select(Device).where(Device.merchant_id == merchant.id).order_by(col(Device.id))
    return list(session.exec(query).all())


def revoke_device(*, session: Session, merchant: Merchant, device_id: int, now: datetime) -> Device:
    """Revoke a device of this merchant; it is refused from its next request on."""
    device = session.get(Device, device_id)
    if device is None or device.merchant_id != merchant.id:
        raise NotFound(f"No device {device_id} at {merchant.slug}.")
    if device.revoked_at is None:
        device.revoked_at = now
        session.add(device)
    return device


def find_device(*, session: Session, secret: str) -> Device | None:
    query = select(Device).where(Device.secret_hash == hash_device_secret(secret))
    return session.exec(query).first()


def paired_device(*, session: Session, device_id: int, challenge: bool = True) -> Device:
    """The device as it is now: UnknownDevice or DeviceRevoked when it may not act."""
    device = session.get(Device, device_id)
    if device is None:
        raise UnknownDevice(challenge=challenge)
    if device.revoked_at is not None:
        raise DeviceRevoked(challenge=challenge)
    return device


def till_programs(*, session: Session, merchant_id: int) -> list[Program]:
    """The programs a till offers: active ones first, each in the order they were made (closed
    ones left out; archived ones stay for their rewards)."""
    query = (
        select(Program)
        .where(Program.merchant_id == merchant_id, col(Program.closed_at).is_(None))
        .order_by(col(Program.active).desc(), col(Program.id))
    )
    return list(session.exec(query).all())


MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200
# zxcvbn's score (0-4) of how hard a password is to guess: 3 is "safely unguessable" even for
# someone with a copy of the Argon2id hashes, and is what treu's own generated passwords score.
MIN_PASSWORD_SCORE = 3
# zxcvbn looks at this much of a password (it refuses longer ones); a long password whose first
# 72 characters are a common one is refused too.
_SCORED_LENGTH = 72
# zxcvbn keeps a call's hints in a module-level dictionary: one call at a time.
_scoring = threading.Lock()
PASSWORD_PROBLEMS = {
    "short": f"A password needs at least {MIN_PASSWORD_LENGTH} characters.",
    "long": f"A password may have at most {MAX_PASSWORD_LENGTH} characters.",
    "guessable": "This password is too easy to guess (a common password, a part of the e-mail "
    "address, a pattern or a repetition). A few words that do not belong together make a good "
    "one.",
}


def password_problem(password: str, *, email: str = "") -> str | None:
    """Why a new owner password is refused ("short", "long", "guessable"), or None: a length
    floor, and zxcvbn's check against common passwords, words, patterns and the e-mail."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return "short"
    if len(password) > MAX_PASSWORD_LENGTH:
        return "long"
    with _scoring:
        score = int(zxcvbn(password[:_SCORED_LENGTH], user_inputs=_hints(email))["score"])
    return "guessable" if score < MIN_PASSWORD_SCORE else None


def _hints(email: str) -> list[str]:
    """Words an owner's password must not lean on: the e-mail address and its parts (the shop's
    name is often one: owner@cafe-sonne.example gives cafe-sonne, cafesonne, cafe, sonne)."""
    labels = re.split(r"[@.]", email)
    words = {"treu", email, *labels, *re.split(r"[@.+_-]", email)}
    words |= {re.sub(r"[+_-]", "", label) for label in labels}
    return sorted(word for word in words if len(word) >= 3)


def new_password_hash(password: str, *, email: str = "") -> str:
    """The Argon2id hash of a new owner password; MerchantError for one too easy to guess."""
    problem = password_problem(password, email=email)
    if problem is not None:
        raise MerchantError(PASSWORD_PROBLEMS[problem], code=f"password-{problem}")
    return hash_password(password)


def set_owner_password(*, session: Session, owner: Owner, password: str) -> None:
    """Store a new password for the owner, refused when too easy to guess; the caller has
    checked the old one."""
    hashed = new_password_hash(password, email=owner.email)
    store_password_hash(session=session, owner=owner, password_hash=hashed)


def store_password_hash(*, session: Session, owner: Owner, password_hash: str) -> None:
    """Store a hash made beforehand by new_password_hash: the account page hashes before its
    write transaction (Argon2id takes a fifth of a second, too long to hold SQLite's lock)."""
    owner.password_hash = password_hash
    session.add(owner)
    session.flush()


# --- the merchant area: program, profile, devices ----------------------------------------------


@dataclass(frozen=True)
class ProgramChange:
    program: Program
    # Cards whose stamps were scaled up because more stamps are now required.
    rescaled_cards: int = 0


def list_programs(*, session: Session, merchant: Merchant) -> list[Program]:
    query = select(Program).where(Program.merchant_id == merchant.id).order_by(col(Program.id))
    return list(session.exec(query).all())


def get_program(*, session: Session, merchant: Merchant, program_id: int) -> Program:
    """A program of this merchant; any other merchant's program is simply not found."""
    program = session.get(Program, program_id)
    if program is None or program.merchant_id != merchant.id:
        raise NotFound(f"No program {program_id} at {merchant.slug}.")
    return program


def update_program(
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
    expire_months: int | None = None,
) -> ProgramChange:
    """Change a program's rules (expire_months None: as it is). Collected stamps are never
    lost: a lower goal makes rewards due sooner; a higher goal scales every card's stamps up in
    proportion (see scaled_stamps)."""
    program = get_program(session=session, merchant=merchant, program_id=program_id)
    rules = validated(
        ProgramBase,
        {
            "name": name.strip() or program.name, "stamps_required": stamps_required,
            "reward_text": reward_text.strip(), "max_stamps_per_scan": max_stamps_per_scan,
            "cooldown_seconds": cooldown_seconds, "daily_cap": daily_cap,
            "expire_months": program.expire_months if expire_months is None else expire_months,
            "active": program.active,
        },
    )  # fmt: skip
    if not rules.reward_text:
        raise MerchantError("reward_text: the reward needs a description", status=422)
    rescaled = 0
    if rules.stamps_required > program.stamps_required:
        assert program.id is not None
        rescaled = ledger.adjust_balances(
            session=session,
            merchant_id=program.merchant_id,
            program_id=program.id,
            old_required=program.stamps_required,
            new_required=rules.stamps_required,
            now=now,
        )
    for field, value in rules.model_dump().items():
        setattr(program, field, value)
    session.add(program)
    session.flush()
    return ProgramChange(program, rescaled)


def set_program_active(
    *, session: Session, merchant: Merchant, program_id: int, active: bool
) -> Program:
    """Pause or resume stamping; collected stamps and due rewards stay redeemable."""
    program = get_program(session=session, merchant=merchant, program_id=program_id)
    if active and (program.archived_at is not None or program.closed_at is not None):
        raise MerchantError("This program has ended; it cannot be resumed.", status=409)
    program.active = active
    session.add(program)
    session.flush()
    return program


GOOGLE_REVIEW_URL = "https://search.google.com/local/writereview?placeid="
_PLACE_ID = re.compile(r"[A-Za-z0-9_-]{16,200}")
# Printable ASCII without space, quotes or angle brackets (RFC 3986 plus what browsers send).
_URL_CHARS = re.compile(r"[!#-&(-;=?-~]+")


def review_url_from(text: str) -> str:
    """The public review link from what the owner typed: a Google Place ID becomes Google's
    'write a review' link; any other https address is kept as it is; empty removes it.

    The one check for the link wherever it is set (the profile form, `treu merchant create`)
    and read (the /r/{slug} redirect): it ends up in a Location header and an href, so no
    other scheme, no whitespace or control character (a CR/LF would split the header)."""
    text = text.strip(" \t")
    if not text:
        return ""
    if _PLACE_ID.fullmatch(text):
        return GOOGLE_REVIEW_URL + text
    if text.lower().startswith("https://") and len(text) <= 500 and _URL_CHARS.fullmatch(text):
        host = text[8:].split("/", 1)[0]
        if "." in host and "@" not in host:
            return text
    raise MerchantError(
        "The review link must be a Google Place ID or an address starting with https://.",
        status=422,
        code="review-link",
    )


def update_profile(
    *,
    session: Session,
    merchant: Merchant,
    name: str,
    city: str,
    category: str,
    review_link: str,
    locale: str,
) -> Merchant:
    """Change the merchant's public profile (the slug, and so the poster's QR, stays)."""
    name = name.strip()
    if not name:
        raise MerchantError("A merchant needs a name.", status=422, code="name")
    if locale not in ("de", "en"):
        raise MerchantError("The language is German (de) or English (en).", status=422)
    merchant.name = name[:120]
    merchant.city = city.strip()[:80]
    merchant.category = category.strip()[:80]
    merchant.review_url = review_url_from(review_link)
    merchant.locale = locale
    session.add(merchant)
    session.flush()
    return merchant


def get_device(*, session: Session, merchant: Merchant, device_id: int) -> Device:
    """A device of this merchant; any other merchant's device is simply not found."""
    device = session.get(Device, device_id)
    if device is None or device.merchant_id != merchant.id:
        raise NotFound(f"No device {device_id} at {merchant.slug}.")
    return device


def rename_device(*, session: Session, merchant: Merchant, device_id: int, label: str) -> Device:
    """Give a device of this merchant a new label (what the owner recognises it by)."""
    device = get_device(session=session, merchant=merchant, device_id=device_id)
    label = label.strip()[:80]
    if not label:
        raise MerchantError("A device needs a name.", status=422, code="label")
    device.label = label
    session.add(device)
    session.flush()
    return device
