"""Claim codes: a till makes a code for N stamps, a card claims it once, the till sees it."""

import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.config import Settings
from app.ledger.models import LedgerEntry
from app.merchants import service as merchants
from tests.helpers.api import new_card, stamp
from tests.helpers.clock import Clock
from tests.helpers.concurrency import Call, fire
from tests.helpers.shops import Shop


def make_code(client: TestClient, shop: Shop, key: str | None = None, **body: Any) -> Any:
    headers = dict(shop.auth)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/api/v1/claims", json=body, headers=headers)


def new_code(client: TestClient, shop: Shop, **body: Any) -> str:
    response = make_code(client, shop, **body)
    assert response.status_code == 201, response.text
    code: str = response.json()["code"]
    return code


def claim(client: TestClient, code: str, token: str) -> Any:
    return client.post(f"/api/v1/claims/{code}", json={"token": token})


def status(client: TestClient, shop: Shop, code: str) -> Any:
    return client.get(f"/api/v1/claims/{code}", headers=shop.auth)


def stamps_at(client: TestClient, token: str, shop: Shop) -> int:
    view = client.get(f"/api/v1/cards/{token}").json()["cards"]
    return sum(c["stamps"] for c in view if c["merchant"]["slug"] == shop.slug)


def test_a_code_adds_its_stamps_once_and_the_till_sees_it(
    client: TestClient, shop: Shop, card: str, settings: Settings, clock: Clock
) -> None:
    made = make_code(client, shop, count=3)
    assert made.status_code == 201, made.text
    body = made.json()
    code = body["code"]
    assert len(code) == 20 and code.isalnum() and code == code.upper()
    assert body["claim_url"] == f"{settings.base_url}/k/{code}"
    assert body["count"] == 3
    assert body["program"] == {
        "id": shop.program_id, "name": "10 stamps", "stamps_required": 10,
        "reward": "1 free coffee",
    }  # fmt: skip
    expires = clock() + timedelta(seconds=settings.claim_ttl_seconds)
    assert body["expires_at"].startswith(expires.isoformat()[:19])
    assert status(client, shop, code).json() == {
        "claimed": False, "expired": False, "expires_at": body["expires_at"],
    }  # fmt: skip

    claimed = claim(client, code, card)
    assert claimed.status_code == 201, claimed.text
    result = claimed.json()
    assert result["stamps"] == 3 and result["rewards_available"] == 0
    assert result["merchant"] == {"slug": shop.slug, "name": "Café Sonne"}
    assert result["program"]["reward"] == "1 free coffee"
    assert stamps_at(client, card, shop) == 3
    assert status(client, shop, code).json()["claimed"] is True

    # The same card retrying (its answer was lost) gets the same answer, not a second stamp.
    again = claim(client, code.lower(), card)
    assert again.status_code == 201
    assert again.json()["entry_id"] == result["entry_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert stamps_at(client, card, shop) == 3

    other = claim(client, code, new_card(client))
    assert other.status_code == 410
    assert other.json()["code"] == "claim-used"
    assert "already used" in other.json()["detail"]


def test_the_stamp_is_booked_on_the_till_that_made_the_code(
    app: FastAPI, client: TestClient, shop: Shop, card: str
) -> None:
    entry_id = claim(client, new_code(client, shop), card).json()["entry_id"]
    with Session(app.state.engine) as session:
        entry = session.get(LedgerEntry, entry_id)
        assert entry is not None
        assert (entry.kind, entry.delta, entry.device_id) == ("stamp", 1, shop.device_id)


def test_a_code_needs_no_body(client: TestClient, shop: Shop) -> None:
    made = client.post("/api/v1/claims", headers=shop.auth)
    assert made.status_code == 201, made.text
    assert made.json()["count"] == 1 and made.json()["program"]["id"] == shop.program_id


def test_a_code_expires(client: TestClient, clock: Clock, shop: Shop, card: str) -> None:
    code = new_code(client, shop)
    clock.advance(119)
    assert status(client, shop, code).json()["expired"] is False
    clock.advance(1)
    assert status(client, shop, code).json()["expired"] is True
    late = claim(client, code, card)
    assert late.status_code == 410
    assert late.json()["code"] == "claim-expired"
    assert "expired" in late.json()["detail"]
    assert stamps_at(client, card, shop) == 0
    assert status(client, shop, code).json()["claimed"] is False


def test_a_till_sees_only_its_own_merchants_codes(
    client: TestClient, shop: Shop, other_shop: Shop
) -> None:
    code = new_code(client, shop)
    assert status(client, other_shop, code).status_code == 404
    assert status(client, shop, code).status_code == 200
    assert client.get(f"/api/v1/claims/{code}").status_code == 401
    assert client.post("/api/v1/claims", json={}).status_code == 401
    # Another merchant's program cannot be named.
    wrong = make_code(client, shop, program_id=other_shop.program_id)
    assert wrong.status_code == 404


def test_cooldown_applies_and_leaves_the_code_usable(
    client: TestClient, clock: Clock, shop: Shop, card: str
) -> None:
    assert stamp(client, shop, card).status_code == 201
    code = new_code(client, shop, count=2)
    clock.advance(10)
    refused = claim(client, code, card)
    assert refused.status_code == 429
    assert refused.json()["code"] == "cooldown"
    assert "Retry-After" in refused.headers
    assert status(client, shop, code).json()["claimed"] is False
    clock.advance(60)
    assert claim(client, code, card).status_code == 201
    assert stamps_at(client, card, shop) == 3


def test_refusals_write_nothing(app: FastAPI, client: TestClient, shop: Shop, card: str) -> None:
    assert make_code(client, shop, count=11).status_code == 422  # max 10 per scan
    assert make_code(client, shop, count=0).status_code == 422
    assert claim(client, "A" * 20, card).status_code == 404
    assert claim(client, "not-a-code", card).status_code == 404
    code = new_code(client, shop)
    assert claim(client, code, "NOTATOKEN").status_code == 422
    gone = new_card(client)
    assert client.delete(f"/api/v1/cards/{gone}").status_code == 204
    deleted = claim(client, code, gone)
    assert deleted.status_code == 410 and deleted.json()["code"] == "card-deleted"
    assert status(client, shop, code).json()["claimed"] is False
    assert claim(client, code, card).status_code == 201


def test_a_revoked_till_cannot_make_codes_and_its_codes_die(
    app: FastAPI, client: TestClient, clock: Clock, shop: Shop, card: str
) -> None:
    code = new_code(client, shop)
    with Session(app.state.engine) as session:
        merchant = merchants.get_merchant(session=session, slug=shop.slug)
        merchants.revoke_device(
            session=session, merchant=merchant, device_id=shop.device_id, now=clock()
        )
        session.commit()
    refused = claim(client, code, card)
    assert refused.status_code == 410, refused.text
    assert make_code(client, shop).status_code == 401


def test_an_idempotent_retry_returns_the_same_code(client: TestClient, shop: Shop) -> None:
    key = uuid.uuid4().hex
    first = make_code(client, shop, key=key, count=2)
    again = make_code(client, shop, key=key, count=2)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert make_code(client, shop, key=key, count=3).status_code == 422
    assert (
        make_code(client, shop, key=uuid.uuid4().hex, count=2).json()["code"]
        != first.json()["code"]
    )


def test_codes_are_stored_only_hashed(app: FastAPI, client: TestClient, shop: Shop) -> None:
    code = new_code(client, shop)
    with app.state.engine.connect() as conn:
        rows = [
            tuple(str(v) for v in row) for row in conn.exec_driver_sql("SELECT * FROM claim_code")
        ]
    assert rows and not any(code in value or code.lower() in value for row in rows for value in row)


def claim_all_at_once(apps: list[FastAPI], code: str, tokens: list[str]) -> list[int]:
    """Every card claims the code at once, through both apps: the answers' statuses."""
    answers = fire(apps, [Call(f"/api/v1/claims/{code}", {}, {"token": t}) for t in tokens])
    return [a.status for a in answers]


def test_one_of_many_concurrent_claims_wins(
    app: FastAPI, second_app: FastAPI, client: TestClient, clock: Clock, shop: Shop
) -> None:
    tokens = [new_card(client) for _ in range(12)]
    with TestClient(second_app):  # start the second instance's writer like a server would
        for _round in range(3):
            clock.advance(61)  # past the last winner's cooldown
            code = new_code(client, shop, count=2)
            statuses = claim_all_at_once([app, second_app], code, tokens)
            assert Counter(statuses) == {201: 1, 410: 11}, statuses
    with Session(app.state.engine) as session:
        query = select(LedgerEntry).where(LedgerEntry.merchant_id == shop.merchant_id)
        assert [e.delta for e in session.exec(query)] == [2, 2, 2]
    total = sum(stamps_at(client, t, shop) for t in tokens)
    assert total == 6
