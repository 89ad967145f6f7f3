"""A shop as its owner sets it up, written straight to the database: a merchant with a program
and a device, the pairing codes the owner makes, the commands its device sends the ledger."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from sqlmodel import Session, col, select

from app.ledger.service import Command
from app.merchants import pairing
from app.merchants import service as merchants
from app.merchants.models import Merchant, PairingCode
from app.tokens import crypto


@dataclass
class Shop:
    merchant_id: int
    slug: str
    program_id: int
    device_id: int
    secret: str
    owner_email: str
    owner_password: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


def make_shop(app: FastAPI, name: str, **options: Any) -> Shop:
    with Session(app.state.engine, expire_on_commit=False) as session:
        new = merchants.create_merchant(
            session=session,
            name=name,
            stamps_required=options.pop("stamps_required", 10),
            reward=options.pop("reward", "1 free coffee"),
            now=app.state.clock(),
            **options,
        )
        device, secret = merchants.create_device(
            session=session, merchant=new.merchant, now=app.state.clock()
        )
        session.commit()
        assert new.merchant.id and new.program.id and device.id
        return Shop(new.merchant.id, new.merchant.slug, new.program.id, device.id, secret,
                    new.owner_email, new.owner_password)  # fmt: skip


@dataclass(frozen=True)
class Pairing:
    """A pairing code as the owner's devices page makes it."""

    id: int  # the stored row's
    code: str
    url: str  # what the tablet opens
    expires_at: datetime


def new_pairing(app: FastAPI, shop: Shop, label: str = "") -> Pairing:
    """A pairing code the shop's owner made, for a tablet to redeem."""
    with Session(app.state.engine, expire_on_commit=False) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        code, url, expires_at = pairing.create_pairing_code(
            session=session, merchant=merchant, now=app.state.clock(),
            base_url=app.state.settings.base_url, label=label,
        )  # fmt: skip
        session.commit()
        # Only the code's hash is stored: that is how its row is found.
        row_id = session.exec(
            select(PairingCode.id).where(col(PairingCode.code_hash) == pairing.hash_code(code))
        ).one()
    assert row_id is not None
    return Pairing(row_id, code, url, expires_at)


def ledger_command(
    app: FastAPI, shop: Shop, card_id: bytes, op: str = "stamp", **fields: Any
) -> Command:
    """A command as the stamp route would queue it for this card at the shop's device (for
    tests that drive the ledger writer directly). The fingerprint is taken of the fields."""
    keyring = app.state.keyring
    return Command(
        op=op,  # type: ignore[arg-type]
        merchant_id=shop.merchant_id,
        device_id=shop.device_id,
        now=app.state.clock(),
        holder=crypto.holder_for(keyring, card_id, shop.merchant_id),
        card_ref=crypto.card_ref(keyring, card_id),
        fingerprint=crypto.request_fingerprint(keyring, shop.merchant_id, repr(fields).encode()),
        **fields,
    )
