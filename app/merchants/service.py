"""Merchants, programs, owners and devices: created by the CLI, used by every other domain."""

import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime

import nacl.pwhash
from pydantic import ValidationError
from sqlmodel import Session, col, select

from app.errors import AppError, NotFound
from app.merchants.models import Device, Merchant, Owner, Program, ProgramBase

DEVICE_SECRET_PREFIX = "treu_dev_"


class MerchantError(AppError):
    """A merchant, program or device request that cannot be carried out."""


@dataclass(frozen=True)
class NewMerchant:
    merchant: Merchant
    program: Program
    owner_email: str
    owner_password: str


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
    try:  # a non-table model validates, so the CLI's numbers obey the same limits as the API
        rules = ProgramBase(
            name=f"{stamps_required} stamps",
            stamps_required=stamps_required,
            reward_text=reward,
            cooldown_seconds=cooldown_seconds,
            max_stamps_per_scan=max_stamps_per_scan,
            daily_cap=daily_cap,
        )
    except ValidationError as exc:
        raise MerchantError(
            str(exc.errors()[0]["msg"]) + f" ({exc.errors()[0]['loc'][0]})"
        ) from None
    if slug is not None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", slug):
            raise MerchantError("A slug is lower-case letters, digits and hyphens.")
        if session.exec(select(Merchant.id).where(Merchant.slug == slug)).first() is not None:
            raise MerchantError(f"The slug {slug!r} is taken.", status=409)
    else:
        slug = _free_slug(session, slugify(name))
    merchant = Merchant(
        slug=slug, name=name.strip(), city=city, category=category, review_url=review_url,
        created_at=now,
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


MIN_PASSWORD_LENGTH = 10


def set_owner_password(*, session: Session, owner: Owner, password: str) -> None:
    """Store a new password (Argon2id) for the owner; the caller has checked the old one."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise MerchantError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > 200:
        raise MerchantError("A password may have at most 200 characters.")
    owner.password_hash = hash_password(password)
    session.add(owner)
    session.flush()
