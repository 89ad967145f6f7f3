"""The till's JSON endpoints and pages, over HTTP: pairing, what a scan shows, QR, revocation."""

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.merchants import pairing
from app.merchants import service as merchants
from app.merchants.models import Merchant
from tests.helpers.api import new_card, stamp
from tests.helpers.clock import Clock
from tests.helpers.shops import Shop, new_pairing


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_pairing_gives_a_working_device_once(app: FastAPI, client: TestClient, shop: Shop) -> None:
    code = new_pairing(app, shop, label="Counter left").code
    response = client.post("/api/v1/till/pair", json={"code": code.lower()})
    assert response.status_code == 201, response.text
    paired = response.json()
    assert paired["merchant"] == {"slug": shop.slug, "name": "Café Sonne"}
    assert paired["device"]["label"] == "Counter left"

    info = client.get("/api/v1/till", headers=_bearer(paired["secret"]))
    assert info.status_code == 200
    body = info.json()
    assert body["merchant"]["name"] == "Café Sonne"
    assert body["device"]["label"] == "Counter left"
    assert body["undo_window_seconds"] == 600
    assert body["claim_url_prefix"] == f"{app.state.settings.base_url}/k/"
    [program] = body["programs"]
    assert program["id"] == shop.program_id
    assert (program["stamps_required"], program["reward"]) == (10, "1 free coffee")
    assert program["max_stamps_per_scan"] == 10

    again = client.post("/api/v1/till/pair", json={"code": code})
    assert again.status_code == 410
    assert again.json()["code"] == "pairing-used"
    unknown = client.post("/api/v1/till/pair", json={"code": "AAAABBBBCCCC"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "pairing-unknown"


def test_a_scanned_card_shows_its_stamps_here(
    client: TestClient, clock: Clock, shop: Shop, other_shop: Shop
) -> None:
    token = new_card(client)

    def look(scanned: str) -> Any:
        return client.get(f"/api/v1/till/cards/{scanned}", headers=shop.auth)

    fresh = look(token).json()
    assert fresh["token"] == token
    assert fresh["balances"] == [
        {"program_id": shop.program_id, "stamps": 0, "rewards_available": 0,
         "cooldown_remaining": 0, "last_stamp_at": None},
    ]  # fmt: skip
    assert stamp(client, shop, token, count=10).status_code == 201
    assert stamp(client, other_shop, token, count=3).status_code == 201
    clock.advance(20)
    [balance] = look(token).json()["balances"]
    # Only this merchant's stamps; the cooldown tells the cashier a stamp was just given.
    assert (balance["stamps"], balance["rewards_available"]) == (10, 1)
    assert balance["cooldown_remaining"] == 40
    # A handheld scanner on a German keyboard: the token is found inside the mangled URL.
    mangled = f"httpÖ--treu.test-c-{token}"
    assert look(mangled).json()["token"] == token

    not_card = look("HELLO")
    assert not_card.status_code == 404 and not_card.json()["code"] == "not-a-card"
    forged = token[:-10] + ("A" if token[-10] != "A" else "B") + token[-9:]
    assert look(forged).json()["code"] == "not-a-card"
    assert client.delete(f"/api/v1/cards/{token}").status_code == 204
    deleted = look(token)
    assert deleted.status_code == 410 and deleted.json()["code"] == "card-deleted"
    assert client.get(f"/api/v1/till/cards/{token}").status_code == 401


def test_claim_qr_only_for_claim_urls(app: FastAPI, client: TestClient, shop: Shop) -> None:
    base = app.state.settings.base_url
    claim_url = f"{base}/k/ABCD2345"
    ok = client.get("/api/v1/till/qr.svg", params={"text": claim_url}, headers=shop.auth)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in ok.text
    for text in (
        "https://evil.example/k/ABCD",
        f"{base}/c/ABCD2345",
        f"{base}/k/",
        f"{base}/k/A/B",
    ):
        refused = client.get("/api/v1/till/qr.svg", params={"text": text}, headers=shop.auth)
        assert refused.status_code == 422, text
    anonymous = client.get("/api/v1/till/qr.svg", params={"text": claim_url})
    assert anonymous.status_code == 401


def test_a_revoked_till_is_locked_out_at_its_next_read(
    app: FastAPI, client: TestClient, clock: Clock, shop: Shop
) -> None:
    token = new_card(client)
    assert client.get("/api/v1/till", headers=shop.auth).status_code == 200
    assert stamp(client, shop, token).status_code == 201  # the device identity is cached now
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        merchants.revoke_device(
            session=session, merchant=merchant, device_id=shop.device_id, now=clock()
        )
        session.commit()
    for response in (
        client.get("/api/v1/till", headers=shop.auth),
        client.get(f"/api/v1/till/cards/{token}", headers=shop.auth),
    ):
        assert response.status_code == 401
        assert response.json()["code"] == "device-revoked"
    clock.advance(120)
    assert stamp(client, shop, token).json()["code"] == "device-revoked"


def test_till_pages(client: TestClient, app: FastAPI, shop: Shop) -> None:
    html = {"Accept": "text/html", "Accept-Language": "de"}
    till = client.get("/till", headers=html)
    assert till.status_code == 200
    assert 'id="till-messages"' in till.text
    assert "Dieser Browser ist noch keine Kasse" in till.text
    code = new_pairing(app, shop).code
    page = client.get(f"/till/pair/{code}", headers=html)
    assert page.status_code == 200 and f'data-code="{code}"' in page.text
    typed = client.get(
        "/till/pair", params={"code": pairing.display_code(code).lower()}, follow_redirects=False
    )
    assert typed.status_code == 303 and typed.headers["location"] == f"/till/pair/{code}"
    nonsense = client.get("/till/pair", params={"code": "x"}, follow_redirects=False)
    assert nonsense.headers["location"] == "/till"
