"""Merchant-owned tables: every one leads with merchant_id (the shard key)."""

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import LargeBinary
from sqlmodel import Column, Field, SQLModel


class MerchantBase(SQLModel):
    slug: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=120)
    city: str = Field(default="", max_length=80)
    category: str = Field(default="", max_length=80)
    review_url: str = Field(default="", max_length=500)
    locale: str = Field(default="de", max_length=8)
    timezone: str = Field(default="Europe/Vienna", max_length=64)
    # Regulars' status lapses after this many months without a visit (it starts again from
    # the next stamp); 0: never.
    tier_lapse_months: int = Field(default=0, ge=0, le=60)
    # The shop's purchase cycle in days as the owner confirmed or set it (the dashboard's "at
    # risk" and "lapsed" follow it); None: derived from the visits (app.analytics.kpis).
    purchase_cycle_days: int | None = Field(default=None, ge=7, le=180)


class Merchant(MerchantBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime
    # How the shop looks (app.merchants.branding): an accent colour ("#1b5e20") that passed the
    # WCAG AA check, None: treu's green; and a short hash of the logo (in merchant_logo), the
    # version in its URL so that a browser may keep it for a year.
    accent_color: str | None = Field(default=None, max_length=7)
    logo_version: str | None = Field(default=None, max_length=16)


class MerchantLogo(SQLModel, table=True):
    """A shop's logo, re-encoded by treu as PNG (at most 512 px a side, no metadata). Apart from
    merchant so that the bytes are read only when the logo itself is asked for."""

    __tablename__ = "merchant_logo"

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    png: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime


class ProgramBase(SQLModel):
    name: str = Field(max_length=120)
    stamps_required: int = Field(ge=1, le=100)
    reward_text: str = Field(max_length=200)
    max_stamps_per_scan: int = Field(default=10, ge=1, le=100)
    cooldown_seconds: int = Field(default=60, ge=0, le=86_400)
    # 0 means no daily cap.
    daily_cap: int = Field(default=0, ge=0, le=1000)
    # Stamps expire after this many months without a visit at the shop; 0: never.
    expire_months: int = Field(default=0, ge=0, le=60)
    active: bool = True
    # What the owner says a visit brings in and a reward costs, in cents of EUR (optional):
    # only the dashboard's estimates (lifetime value, reward cost, liability) use them.
    average_ticket_cents: int | None = Field(default=None, ge=0, le=100_000_000)
    reward_value_cents: int | None = Field(default=None, ge=0, le=100_000_000)


class Program(ProgramBase, table=True):
    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime
    # Archived: no more stamps, its rewards stay redeemable. Closed: nothing more at all (its
    # outstanding stamps are booked out). A program with either is no longer `active`.
    archived_at: datetime | None = None
    closed_at: datetime | None = None


class Owner(SQLModel, table=True):
    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True)
    password_hash: str = Field(max_length=255)
    created_at: datetime


class Device(SQLModel, table=True):
    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    id: int | None = Field(default=None, primary_key=True)
    label: str = Field(default="", max_length=80)
    # SHA-256 of a 192-bit random secret: a slow hash adds nothing at that entropy.
    secret_hash: str = Field(max_length=64, unique=True)
    created_at: datetime
    last_seen_at: datetime | None = None
    revoked_at: datetime | None = None


class PairingCode(SQLModel, table=True):
    """A one-time code that turns a browser into a cashier device (valid minutes, single use)."""

    __tablename__ = "pairing_code"

    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    id: int | None = Field(default=None, primary_key=True)
    # SHA-256 of the code: for its few minutes the code is as good as a device secret.
    code_hash: str = Field(max_length=64, unique=True)
    label: str = Field(default="", max_length=80)
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    device_id: int | None = Field(default=None, foreign_key="device.id")


class OwnerSession(SQLModel, table=True):
    """A logged-in browser of an owner. The cookie holds a random id; this table only its
    keyed hash, so a copy of the table cannot be replayed as a login."""

    __tablename__ = "owner_session"

    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    id: str = Field(primary_key=True, max_length=64)
    owner_id: int = Field(foreign_key="owner.id", index=True)
    created_at: datetime
    expires_at: datetime


class LoginThrottle(SQLModel, table=True):
    """Failed logins per e-mail address from all clients together: the brake against guessing
    from many addresses (app/merchants/throttle.py). It never locks an account by itself.

    Keyed by a keyed hash of the address: attempts on addresses that belong to no owner are
    counted alike (so the answer does not tell which addresses exist) without storing them.
    Not merchant-owned, hence no merchant_id. No IP address is ever recorded. Rows whose last
    failure is more than a day old are purged (purge_login_throttle).
    """

    __tablename__ = "login_throttle"

    email_hash: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    last_failure_at: datetime


def merchant_zone(merchant: Merchant) -> ZoneInfo:
    """The shop's time zone (its local days and hours); UTC if the stored name is unknown."""
    try:
        return ZoneInfo(merchant.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
