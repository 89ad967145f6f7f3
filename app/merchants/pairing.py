"""Device pairing: a one-time code (QR or typed) turns a browser into a cashier device.

The owner makes a code; the tablet opens `{public_url}/till/pair/{code}` and redeems it for a
device secret, which only that browser keeps. A code is valid for ten minutes and works once;
the server stores only its hash.
"""

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from app.errors import AppError, NotFound
from app.merchants.exceptions import PairingRefused
from app.merchants.models import Device, Merchant, PairingCode
from app.merchants.service import create_device

PAIRING_VALID_SECONDS = 600
# Base32 letters and digits: no 0/1/8/9, so nothing reads as another character when typed.
CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
CODE_CHARS = 12  # 60 bits: unguessable in ten minutes, still short enough to type
# Old codes are kept a day (so "used" and "expired" can be told apart), then removed.
KEEP_USED_CODES = timedelta(days=1)


@dataclass(frozen=True)
class PairedDevice:
    device: Device
    secret: str
    merchant: Merchant


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalize_code(text: str) -> str:
    """The code as stored, from what a person typed: any case, spaces, dashes, 0/1/8 for O/I/B."""
    cleaned = re.sub(r"[\s\-_.]", "", text.upper())
    return cleaned.translate(str.maketrans("018", "OIB"))


def display_code(code: str) -> str:
    """Groups of four, for reading out and typing: ABCD-EFGH-JKLM."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def pairing_url(base_url: str, code: str) -> str:
    return f"{base_url}/till/pair/{code}"


def create_pairing_code(
    *, session: Session, merchant: Merchant, now: datetime, base_url: str, label: str = ""
) -> tuple[str, str, datetime]:
    """Make a one-time pairing code; returns (code, url to open on the tablet, expires_at).

    `base_url` is the public URL (settings.base_url) the QR must point to.
    """
    assert merchant.id is not None
    session.execute(
        delete(PairingCode).where(
            col(PairingCode.merchant_id) == merchant.id,
            col(PairingCode.expires_at) < now - KEEP_USED_CODES,
        )
    )
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_CHARS))
    expires_at = now + timedelta(seconds=PAIRING_VALID_SECONDS)
    session.add(
        PairingCode(
            merchant_id=merchant.id,
            code_hash=hash_code(code),
            label=label.strip()[:80],
            created_at=now,
            expires_at=expires_at,
        )
    )
    session.flush()
    return code, pairing_url(base_url, code), expires_at


def redeem_pairing_code(
    *, session: Session, code: str, now: datetime, label: str = ""
) -> PairedDevice:
    """Use a pairing code once: create the cashier device and return its secret (shown once).

    The code is marked used by a conditional UPDATE, so of two browsers racing with the same
    code exactly one gets a device.
    """
    code_hash = hash_code(normalize_code(code))
    claimed = session.execute(
        update(PairingCode)
        .where(
            col(PairingCode.code_hash) == code_hash,
            col(PairingCode.used_at).is_(None),
            col(PairingCode.expires_at) > now,
        )
        .values(used_at=now)
    )
    row = session.exec(select(PairingCode).where(PairingCode.code_hash == code_hash)).first()
    if claimed.rowcount != 1 or row is None:  # type: ignore[attr-defined]
        raise _why_refused(row)
    merchant = session.get(Merchant, row.merchant_id)
    assert merchant is not None
    device, secret = create_device(
        session=session, merchant=merchant, now=now, label=label.strip()[:80] or row.label
    )
    row.device_id = device.id
    session.add(row)
    session.flush()
    return PairedDevice(device, secret, merchant)


def _why_refused(row: PairingCode | None) -> AppError:
    if row is None:
        return NotFound(
            "This pairing code is not known. Check it, or make a new one in the shop's settings.",
            title="Unknown pairing code",
            code="pairing-unknown",
        )
    if row.used_at is not None:
        return PairingRefused(
            "This pairing code was already used. Make a new one in the shop's settings.",
            title="Pairing code already used",
            code="pairing-used",
        )
    return PairingRefused(
        "This pairing code has expired (they are valid for 10 minutes). Make a new one.",
        title="Pairing code expired",
        code="pairing-expired",
    )
