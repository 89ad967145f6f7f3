"""Pairing codes: single use, ten minutes, stored hashed; redeeming makes a working device."""

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.db import write_engine
from app.errors import AppError
from app.merchants import pairing
from app.merchants.models import PairingCode
from app.merchants.service import find_device
from tests.helpers.api import new_card
from tests.helpers.clock import Clock
from tests.helpers.shops import Shop, new_pairing


def _code(app: FastAPI, shop: Shop, label: str = "") -> tuple[str, str]:
    made = new_pairing(app, shop, label)
    assert (made.expires_at - app.state.clock()).total_seconds() == pairing.PAIRING_VALID_SECONDS
    return made.code, made.url


def _redeem(app: FastAPI, code: str) -> pairing.PairedDevice:
    with Session(write_engine(app.state.engine), expire_on_commit=False) as session:
        paired = pairing.redeem_pairing_code(session=session, code=code, now=app.state.clock())
        session.commit()
        return paired


def _refusal(app: FastAPI, code: str) -> str | None:
    try:
        _redeem(app, code)
    except AppError as refusal:
        return refusal.code
    return None


def test_a_code_pairs_one_device_once(app: FastAPI, client: TestClient, shop: Shop) -> None:
    code, url = _code(app, shop, label="Counter left")
    assert url == f"http://treu.test/till/pair/{code}"
    with Session(app.state.engine) as session:
        stored = session.exec(select(PairingCode)).one()
        assert code not in stored.code_hash and stored.code_hash == pairing.hash_code(code)

    paired = _redeem(app, code)
    assert paired.merchant.slug == shop.slug
    assert paired.device.label == "Counter left"
    with Session(app.state.engine) as session:
        found = find_device(session=session, secret=paired.secret)
        assert found is not None and found.merchant_id == shop.merchant_id
    # The new device is a real cashier device: it stamps at its own merchant.
    headers = {"Authorization": f"Bearer {paired.secret}"}
    token = new_card(client)
    response = client.post("/api/v1/stamps", json={"token": token}, headers=headers)
    assert response.status_code == 201, response.text

    assert _refusal(app, code) == "pairing-used"


def test_a_code_expires_after_ten_minutes(app: FastAPI, clock: Clock, shop: Shop) -> None:
    code, _ = _code(app, shop)
    clock.advance(pairing.PAIRING_VALID_SECONDS)
    assert _refusal(app, code) == "pairing-expired"


def test_typed_codes_are_forgiving_and_unknown_codes_refused(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    code, _ = _code(app, shop)
    assert _refusal(app, "ABCDEFGHJKLM") == "pairing-unknown"
    typed = pairing.display_code(code).lower().replace("o", "0").replace("i", "1")
    paired = _redeem(app, f" {typed} ")
    assert paired.merchant.slug == shop.slug
