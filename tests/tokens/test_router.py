"""Card routes: create, view, QR, export, delete, restore, public keys."""

import base64

import nacl.signing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.tokens import crypto
from tests.helpers.api import new_card, stamp
from tests.helpers.shops import Shop

PROBLEM = "application/problem+json"


def test_create_card_needs_no_input(client: TestClient) -> None:
    response = client.post("/api/v1/cards")
    assert response.status_code == 201
    body = response.json()
    assert body["card_url"] == f"http://treu.test/c/{body['token']}"
    assert len(body["recovery_code"].replace("-", "")) == 26


def test_view_lists_stamps_per_merchant(client: TestClient, shop: Shop, card: str) -> None:
    assert client.get(f"/api/v1/cards/{card}").json()["cards"] == []
    stamp(client, shop, card, count=2)
    (entry,) = client.get(f"/api/v1/cards/{card}").json()["cards"]
    assert entry["merchant"] == {
        "slug": shop.slug, "name": "Café Sonne", "accent_color": None, "logo_url": None
    }  # fmt: skip
    assert entry["program"]["stamps_required"] == 10
    assert entry["stamps"] == 2
    assert entry["rewards_available"] == 0


def test_forged_malformed_and_unknown_tokens_are_4xx(client: TestClient, card: str) -> None:
    forged_keys = crypto.Keyring(
        signing_keys=(nacl.signing.SigningKey.generate(),), holder_key=b"x" * 32,
        card_ref_key=b"x" * 32, wallet_key=b"x" * 32, session_key=b"x" * 32,
    )  # fmt: skip
    forged = crypto.sign_card(forged_keys, crypto.new_card_id())
    for token in (forged, card[:-1], card + "AA", "A" * 136, "%C3%A4" * 30, "x" * 3000):
        for path in ("", "/qr.svg", "/export"):
            response = client.get(f"/api/v1/cards/{token}{path}")
            assert 400 <= response.status_code < 500, (token, path, response.status_code)
            assert response.headers["content-type"] == "application/problem+json"


def test_qr_svg_encodes_the_card_url(client: TestClient, card: str) -> None:
    response = client.get(f"/api/v1/cards/{card}/qr.svg")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text.lstrip().startswith("<?xml") or "<svg" in response.text[:200]


def test_export_has_everything_and_nothing_identifying(
    client: TestClient, shop: Shop, card: str
) -> None:
    stamp(client, shop, card, count=3)
    response = client.get(f"/api/v1/cards/{card}/export")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    data = response.json()
    (merchant,) = data["merchants"]
    assert merchant["merchant"]["slug"] == shop.slug
    assert merchant["balances"][0]["stamps"] == 3
    assert [e["kind"] for e in merchant["ledger"]] == ["stamp"]
    assert card not in response.text


def test_delete_then_refused_everywhere(client: TestClient, shop: Shop, card: str) -> None:
    stamp(client, shop, card)
    assert client.delete(f"/api/v1/cards/{card}").status_code == 204
    for path in ("", "/qr.svg", "/export"):
        assert client.get(f"/api/v1/cards/{card}{path}").status_code == 410
    assert client.delete(f"/api/v1/cards/{card}").status_code == 410


def test_restore_from_recovery_code_gives_the_same_card(client: TestClient, shop: Shop) -> None:
    created = client.post("/api/v1/cards").json()
    stamp(client, shop, created["token"], count=4)
    restored = client.post(
        "/api/v1/cards/restore", json={"recovery_code": created["recovery_code"].lower()}
    )
    assert restored.status_code == 200
    assert restored.json()["token"] == created["token"]
    view = client.get(f"/api/v1/cards/{restored.json()['token']}").json()
    assert view["cards"][0]["stamps"] == 4
    wrong = client.post("/api/v1/cards/restore", json={"recovery_code": "AAAA-" * 6 + "AA"})
    assert wrong.status_code == 404


def test_public_keys_verify_a_card_offline(client: TestClient) -> None:
    token = new_card(client)
    keys = client.get("/.well-known/treu-keys.json").json()["keys"]
    raw = crypto.b32decode(token)
    (key,) = [k for k in keys if k["kid"] == raw[1:5].hex()]
    verify_key = nacl.signing.VerifyKey(base64.b64decode(key["public_key"]))
    verify_key.verify(crypto.SIGNATURE_DOMAIN + raw[1:21], raw[21:])


def test_healthz_fails_when_the_database_does_not_answer(settings: Settings) -> None:
    # Nothing listens on port 9: the writer cannot connect, so the check must not say "ok".
    down = settings.model_copy(update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:9/x"})
    app = create_app(down)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/healthz")
    app.state.writer.stop()
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert response.headers["retry-after"] == "5"


def test_healthz_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/cards", "/api/v1/stamps", "/api/v1/redemptions",
                 "/api/v1/entries/{entry_id}/void", "/.well-known/treu-keys.json"):  # fmt: skip
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200
    assert client.get("/nope").headers["content-type"] == "application/problem+json"


def test_openapi_documents_each_routes_problems(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operations = [
        (path, method, operation)
        for path, methods in spec["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in methods.items()
    ]
    assert len(operations) > 15
    for path, method, operation in operations:
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                assert list(response["content"]) == [PROBLEM], (method, path, status)
                assert "detail" in response["content"][PROBLEM]["schema"]["properties"]
    card = spec["paths"]["/api/v1/cards/{token}"]
    assert {"404", "410"} <= card["get"]["responses"].keys()
    assert {"400", "401", "413", "422", "429"} <= spec["paths"]["/api/v1/stamps"]["post"][
        "responses"
    ].keys()
    assert "401" in spec["paths"]["/api/v1/merchant/kpis"]["get"]["responses"]


def test_a_method_an_address_does_not_take_names_all_it_does(client: TestClient, card: str) -> None:
    response = client.put(f"/api/v1/cards/{card}")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert {"GET", "DELETE"} <= set(response.headers["allow"].split(", "))


def test_export_and_delete_cover_the_cards_feedback(
    client: TestClient, shop: Shop, other_shop: Shop, card: str
) -> None:
    from sqlalchemy import text

    stamp(client, shop, card)
    body = {"token": card, "merchant": shop.slug, "rating": 4, "comment": "Lovely crema"}
    assert client.post("/api/v1/feedback", json=body).status_code == 201
    other = new_card(client)
    stamp(client, shop, other)
    assert client.post("/api/v1/feedback", json={**body, "token": other}).status_code == 201

    exported = client.get(f"/api/v1/cards/{card}/export").json()
    assert [f["comment"] for f in exported["feedback"]] == ["Lovely crema"]
    assert client.delete(f"/api/v1/cards/{card}").status_code == 204
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM feedback")).scalar_one()
    assert left == 1  # the other card's feedback stays


def test_the_card_view_answers_while_threads_hold_every_pooled_connection(
    app: FastAPI, client: TestClient, shop: Shop, card: str
) -> None:
    """A burst of slow pages can hold the whole pool; the open card page's poll must not wait
    for a connection there: on SQLite it reads on the event loop, where waiting would stop every
    request. (The view before the burst records the new shop in the card's wallet, a write.)"""
    if app.state.loop_engine is None:
        pytest.skip("PostgreSQL: the card view reads on a worker thread, which may wait")
    stamp(client, shop, card)
    assert client.get(f"/api/v1/cards/{card}").status_code == 200
    pool = app.state.engine.pool
    held = []
    while pool.checkedout() < pool.size() + pool._max_overflow:  # the writer holds some
        held.append(app.state.engine.connect())
    try:
        response = client.get(f"/api/v1/cards/{card}")
        assert response.status_code == 200, response.text
        assert response.json()["cards"][0]["stamps"] == 1
    finally:
        for connection in held:
            connection.close()
