"""Claim codes: made by a till, read back by it, claimed by a card through the ledger writer.

A code is 100 random bits in 20 upper-case base32 characters (the QR alphanumeric mode). Only a
keyed hash is stored, so a copy of the database cannot be used to claim anything. With an
Idempotency-Key the code is derived from the key (under a server key) instead of drawn at
random: a till retrying a lost answer gets the very same code back without the code ever
being stored in clear.
"""

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.claims.exceptions import ClaimGone
from app.claims.models import ClaimCode
from app.claims.schemas import ClaimMerchant, ClaimProgram, ClaimResult
from app.errors import Conflict, NotFound, Unprocessable
from app.ledger.service import Command, Outcome
from app.ledger.writer import LedgerWriter, WriterProcess
from app.merchants.exceptions import DeviceRevoked, UnknownDevice
from app.merchants.models import Merchant, Program
from app.merchants.service import paired_device
from app.tokens.cards import CardKey
from app.tokens.crypto import Keyring, b32encode, holder_for, keyed_hash

CODE_CHARS = 20
_CODE = re.compile(rf"[A-Z2-7]{{{CODE_CHARS}}}")
# Expired and used codes are kept a day (the till may still ask about one), then swept.
KEEP = timedelta(days=1)


@dataclass(frozen=True)
class NewClaim:
    code: str
    claim: ClaimCode
    program: Program


def parse_code(text: str) -> str:
    """The code as typed or scanned: case, spaces and hyphens do not matter."""
    code = re.sub(r"[\s\-]", "", text).upper()
    if not _CODE.fullmatch(code):
        raise NotFound("This is not a treu claim code.", title="Unknown code", code="unknown-claim")
    return code


def code_hash(keyring: Keyring, code: str) -> str:
    return keyed_hash(keyring.card_ref_key, b"treu-claim-code", code.encode()).hex()


def _new_code(keyring: Keyring, merchant_id: int, idempotency_key: str | None) -> str:
    if idempotency_key is None:
        raw = secrets.token_bytes(13)
    else:
        person = b"claim" + merchant_id.to_bytes(8, "big")
        raw = keyed_hash(keyring.card_ref_key, person, idempotency_key.encode(), size=13)
    return b32encode(raw)[:CODE_CHARS]


def _program(session: Session, merchant_id: int, program_id: int | None) -> Program:
    query = select(Program).where(Program.merchant_id == merchant_id)
    if program_id is None:
        query = query.order_by(col(Program.active).desc(), col(Program.id))
    else:
        query = query.where(Program.id == program_id)
    program = session.exec(query).first()
    if program is None:
        raise NotFound("This shop has no such stamp program.", code="unknown-program")
    return program


def create_claim(
    *, session: Session, keyring: Keyring, merchant_id: int, device_id: int, count: int,
    program_id: int | None, idempotency_key: str | None, now: datetime, ttl_seconds: int,
) -> NewClaim:  # fmt: skip
    """Make a single-use code worth `count` stamps in a program of the device's merchant."""
    paired_device(session=session, device_id=device_id, challenge=False)
    code = _new_code(keyring, merchant_id, idempotency_key)
    hashed = code_hash(keyring, code)
    if idempotency_key is not None:
        earlier = session.get(ClaimCode, hashed)
        if earlier is not None:
            same_program = program_id is None or program_id == earlier.program_id
            if earlier.merchant_id != merchant_id or count != earlier.count or not same_program:
                raise Unprocessable(
                    "This Idempotency-Key was already used for a different request.",
                    title="Idempotency-Key reused",
                    code="idempotency-mismatch",
                )
            return NewClaim(code, earlier, _program(session, merchant_id, earlier.program_id))
    program = _program(session, merchant_id, program_id)
    if not program.active:
        raise Conflict(
            "This stamp program is paused; the shop owner can resume it.",
            title="Program paused",
            code="program-paused",
        )
    if count > program.max_stamps_per_scan:
        raise Unprocessable(
            f"At most {program.max_stamps_per_scan} stamps per code in this program.",
            title="Too many stamps",
            code="too-many-stamps",
        )
    assert program.id is not None
    session.execute(
        delete(ClaimCode).where(
            col(ClaimCode.merchant_id) == merchant_id, col(ClaimCode.expires_at) < now - KEEP
        )
    )
    claim = ClaimCode(
        merchant_id=merchant_id, code_hash=hashed, program_id=program.id, device_id=device_id,
        count=count, created_at=now, expires_at=now + timedelta(seconds=ttl_seconds),
    )  # fmt: skip
    session.add(claim)
    try:
        session.flush()
    except IntegrityError:
        # The same Idempotency-Key, sent twice at once: the other request made the code.
        raise Conflict(
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            title="Request in progress",
            code="in-flight",
            headers={"Retry-After": "1"},
        ) from None
    return NewClaim(code, claim, program)


def claim_status(*, session: Session, keyring: Keyring, merchant_id: int, code: str) -> ClaimCode:
    """A code of this merchant, for the till to see whether it was claimed."""
    claim = session.get(ClaimCode, code_hash(keyring, parse_code(code)))
    if claim is None or claim.merchant_id != merchant_id:
        raise NotFound("This shop made no such code.", title="Unknown code", code="unknown-claim")
    return claim


def find_claim(*, session: Session, keyring: Keyring, code: str) -> tuple[ClaimCode, Merchant]:
    """The code a customer scanned, with its merchant; 404 when there is none."""
    hashed = code_hash(keyring, parse_code(code))
    row = session.exec(
        select(ClaimCode, Merchant)
        .join(Merchant, col(Merchant.id) == ClaimCode.merchant_id)
        .where(ClaimCode.code_hash == hashed)
    ).first()
    if row is None:
        raise NotFound(
            "This code is not known. Check that you scanned the whole code.",
            title="Unknown code",
            code="unknown-claim",
        )
    return row[0], row[1]


@dataclass(frozen=True)
class PendingClaim:
    """A scanned code, found, as the ledger command that books its stamps on this card."""

    command: Command
    merchant: Merchant


def prepare_claim(
    *, session: Session, keyring: Keyring, code: str, card: CardKey, now: datetime
) -> PendingClaim:
    """Find the code and turn it into the claim command for this card (nothing is written)."""
    found, merchant = find_claim(session=session, keyring=keyring, code=code)
    assert merchant.id is not None
    command = Command(
        op="claim",
        merchant_id=merchant.id,
        device_id=found.device_id,
        now=now,
        holder=holder_for(keyring, card.card_id, merchant.id),
        card_ref=card.ref,
        program_id=found.program_id,
        count=found.count,
        claim_hash=found.code_hash,
    )
    return PendingClaim(command, merchant)


async def claim(*, writer: LedgerWriter | WriterProcess, pending: PendingClaim) -> Outcome:
    """Book the code's stamps on the card, once, through the ledger writer."""
    try:
        return await writer.submit(pending.command)
    except (DeviceRevoked, UnknownDevice):
        # The till that made the code was unpaired since: the code died with it.
        raise ClaimGone(
            "This code is no longer valid. Ask at the till for a new one.", code="claim-revoked"
        ) from None


def claim_result(outcome: Outcome, merchant: Merchant) -> ClaimResult:
    """What the card page shows after a claim: the new balance at that shop."""
    return ClaimResult(
        entry_id=outcome.body["entry_id"],
        stamps=outcome.body["stamps"],
        rewards_available=outcome.body["rewards_available"],
        merchant=ClaimMerchant(slug=merchant.slug, name=merchant.name),
        program=ClaimProgram(**outcome.body["program"]),
    )
