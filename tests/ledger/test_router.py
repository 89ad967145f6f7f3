"""The ledger API as a till uses it: stamp, redeem, void, idempotency, refusals."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete
from sqlmodel import Session
from starlette.types import Receive, Scope, Send

from app.ledger.direct import DirectStamp
from app.ledger.models import IdempotencyRecord
from tests.helpers.api import new_card, redeem, stamp, void
from tests.helpers.clock import Clock
from tests.helpers.shops import Shop, make_shop

PROBLEM = "application/problem+json"


def test_stamp_adds_stamps_and_reports_rewards(client: TestClient, shop: Shop, card: str) -> None:
    response = stamp(client, shop, card, count=3)
    assert response.status_code == 201
    body = response.json()
    assert body["stamps"] == 3
    assert body["rewards_available"] == 0
    assert body["program"]["reward"] == "1 free coffee"
    assert len(body["entry_id"]) == 32


def test_card_url_and_mangled_scans_are_accepted(
    client: TestClient, shop: Shop, card: str, clock: Clock
) -> None:
    assert stamp(client, shop, f"http://treu.test/c/{card}").status_code == 201
    clock.advance(61)
    mangled = f"httpÖ--treu.test-c-{card}"
    assert stamp(client, shop, mangled).json()["stamps"] == 2


def test_cooldown_refuses_second_stamp_with_retry_after(
    client: TestClient, shop: Shop, card: str, clock: Clock
) -> None:
    assert stamp(client, shop, card).status_code == 201
    clock.advance(40)
    response = stamp(client, shop, card)
    assert response.status_code == 429
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "20"
    assert "40 seconds ago" in response.json()["detail"]
    clock.advance(20)
    assert stamp(client, shop, card).json()["stamps"] == 2


def test_max_stamps_per_scan(client: TestClient, shop: Shop, card: str) -> None:
    response = stamp(client, shop, card, count=11)
    assert response.status_code == 422
    assert "At most 10" in response.json()["detail"]
    assert client.get(f"/api/v1/cards/{card}").json()["cards"] == []


def test_daily_cap(client: TestClient, app: object, card: str, clock: Clock) -> None:
    capped = make_shop(app, "Kiosk", cooldown_seconds=0, daily_cap=3)  # type: ignore[arg-type]
    assert stamp(client, capped, card, count=2).status_code == 201
    assert stamp(client, capped, card, count=1).status_code == 201
    refused = stamp(client, capped, card, count=1)
    assert refused.status_code == 429
    assert "daily maximum of 3" in refused.json()["detail"]
    clock.advance(24 * 3600)
    assert stamp(client, capped, card).json()["stamps"] == 4


def test_redeem_when_due_and_409_when_not(
    client: TestClient, shop: Shop, card: str, clock: Clock
) -> None:
    assert redeem(client, shop, card).status_code == 409
    stamp(client, shop, card, count=10)
    clock.advance(61)
    stamp(client, shop, card, count=2)
    response = redeem(client, shop, card)
    assert response.status_code == 201
    assert response.json()["stamps"] == 2
    assert response.json()["rewards_available"] == 0
    again = redeem(client, shop, card)
    assert again.status_code == 409
    assert "2 of 10 stamps" in again.json()["detail"]


def test_idempotent_retry_returns_first_result(client: TestClient, shop: Shop, card: str) -> None:
    first = stamp(client, shop, card, key="till-1-0001", count=2)
    retry = stamp(client, shop, card, key="till-1-0001", count=2)
    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers.get("idempotent-replayed") == "true"
    assert client.get(f"/api/v1/cards/{card}").json()["cards"][0]["stamps"] == 2


def test_same_key_other_body_is_422(client: TestClient, shop: Shop, card: str) -> None:
    stamp(client, shop, card, key="k-1", count=2)
    response = stamp(client, shop, card, key="k-1", count=3)
    assert response.status_code == 422
    assert "different request" in response.json()["detail"]


def test_idempotency_keys_are_per_merchant(
    client: TestClient, shop: Shop, other_shop: Shop, card: str
) -> None:
    assert stamp(client, shop, card, key="same").status_code == 201
    assert stamp(client, other_shop, card, key="same").status_code == 201


def test_a_retry_after_its_record_expired_never_stamps_twice(
    app: FastAPI, client: TestClient, shop: Shop, card: str, clock: Clock
) -> None:
    """An offline till that lost an answer may retry days later, after the 72-hour records
    are gone: the ledger still knows the key, so the stamp is not booked a second time."""
    first = stamp(client, shop, card, key="synced-late")
    assert first.status_code == 201
    clock.advance(4 * 24 * 3600)
    with Session(app.state.engine) as session:  # as the writer's cleanup leaves it
        session.exec(delete(IdempotencyRecord))
        session.commit()
    again = stamp(client, shop, card, key="synced-late")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert stamp(client, shop, card).json()["stamps"] == first.json()["stamps"] + 1


def test_void_within_window_restores_balance_and_allows_restamp(
    client: TestClient, shop: Shop, card: str, clock: Clock
) -> None:
    entry = stamp(client, shop, card, count=3).json()["entry_id"]
    response = void(client, shop, entry)
    assert response.status_code == 201
    assert response.json()["stamps"] == 0
    assert response.json()["voids_entry_id"] == entry
    assert void(client, shop, entry).status_code == 409  # only once
    assert stamp(client, shop, card, count=2).json()["stamps"] == 2  # cooldown reset by undo


def test_void_after_window_or_of_redeemed_stamps_is_refused(
    client: TestClient, shop: Shop, card: str, clock: Clock
) -> None:
    entry = stamp(client, shop, card, count=10).json()["entry_id"]
    redemption = redeem(client, shop, card).json()["entry_id"]
    refused = void(client, shop, entry)
    assert refused.status_code == 409
    assert "redemption first" in refused.json()["detail"]
    assert void(client, shop, redemption).json()["stamps"] == 10
    assert void(client, shop, entry).json()["stamps"] == 0
    late = stamp(client, shop, card, count=1).json()["entry_id"]
    clock.advance(601)
    assert void(client, shop, late).status_code == 409


def test_device_cannot_touch_another_merchants_entry(
    client: TestClient, shop: Shop, other_shop: Shop, card: str
) -> None:
    entry = stamp(client, shop, card).json()["entry_id"]
    assert void(client, other_shop, entry).status_code == 404
    assert void(client, shop, "0" * 32).status_code == 404
    assert void(client, shop, "not-an-id").status_code == 404


def test_balances_are_per_merchant(
    client: TestClient, shop: Shop, other_shop: Shop, card: str
) -> None:
    stamp(client, shop, card, count=4)
    stamp(client, other_shop, card, count=5)
    view = client.get(f"/api/v1/cards/{card}").json()["cards"]
    by_slug = {c["merchant"]["slug"]: c for c in view}
    assert by_slug[shop.slug]["stamps"] == 4
    assert by_slug[other_shop.slug]["stamps"] == 5
    assert by_slug[other_shop.slug]["rewards_available"] == 1


def test_authentication_is_required_and_checked(client: TestClient, shop: Shop, card: str) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = client.post("/api/v1/stamps", json={"token": card}, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM


def test_revoked_device_is_refused_at_once(client: TestClient, app: object, shop: Shop) -> None:
    from sqlmodel import Session

    from app.merchants.service import get_merchant, revoke_device

    token = new_card(client)
    assert stamp(client, shop, token).status_code == 201  # the device is now cached
    with Session(app.state.engine) as session:  # type: ignore[attr-defined]
        merchant = get_merchant(session=session, slug=shop.slug)
        revoke_device(
            session=session, merchant=merchant, device_id=shop.device_id,
            now=app.state.clock(),  # type: ignore[attr-defined]
        )  # fmt: skip
        session.commit()
    response = stamp(client, shop, token)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_bad_input_gets_a_problem_never_a_500(client: TestClient, shop: Shop, card: str) -> None:
    headers = {**shop.auth, "Content-Type": "application/json"}
    cases = [
        (b"{not json", 400),
        (b"[]", 422),
        (b'{"token": 5}', 422),
        (b'{"token": "' + card.encode() + b'", "count": "many"}', 422),
        (b'{"token": "' + card.encode() + b'", "count": 0}', 422),
        (b'{"token": "' + card.encode() + b'", "surprise": 1}', 422),
        (b'{"token": "' + b"A" * 136 + b'"}', 422),
        (b'{"token": "\xc3\xa4\xc3\xb6\xc3\xbc"}', 422),
        (b'{"token": "' + b"B" * 5000 + b'"}', 422),
        (b'{"token": "' + card[:-3].encode() + b'"}', 422),
        (b"x" * 100_000, 413),
    ]
    for raw, status in cases:
        response = client.post("/api/v1/stamps", content=raw, headers=headers)
        assert response.status_code == status, (raw[:40], response.text)
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["detail"]
    bad_key = {**headers, "Idempotency-Key": "has spaces in it"}
    response = client.post("/api/v1/stamps", json={"token": card}, headers=bad_key)
    assert response.status_code == 400


def test_stamp_route_answers_other_methods_and_documents_itself(client: TestClient) -> None:
    # POST takes a direct way past FastAPI's router (DirectStamp); everything else must not.
    response = client.get("/api/v1/stamps")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    spec = client.get("/openapi.json").json()["paths"]["/api/v1/stamps"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in spec["parameters"]]
    assert spec["responses"]["201"]


def test_the_direct_way_answers_as_the_route_does(
    client: TestClient, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DirectStamp serves POST /api/v1/stamps past FastAPI: its answers, refusals included, are
    the route's to the byte (headers in their order), but for the new entry's random id."""

    def answers(card: str) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
        json_body = {**shop.auth, "Content-Type": "application/json"}
        first = {**json_body, "Idempotency-Key": f"first-{card[-8:]}"}
        requests = [
            ({"json": {"token": card, "count": 2}}, first),  # 201
            ({"json": {"token": card, "count": 2}}, first),  # the same again: replayed
            ({"json": {"token": card, "count": 3}}, first),  # the key with another body: 422
            ({"json": {"token": card}}, json_body),  # within the cooldown: 429
            ({"json": {"token": card}}, {}),  # no device: 401
            ({"json": {"token": card}}, {"Authorization": "Bearer treu_dev_nobody"}),  # 401
            ({"content": b"{not json"}, json_body),  # 400
            ({"content": b'{"token": 5}'}, json_body),  # 422
            ({"json": {"token": "A" * 136}}, json_body),  # not a card: 422
            ({"json": {"token": card}}, {**json_body, "Idempotency-Key": "has spaces"}),  # 400
            ({"content": b"x" * 100_000}, json_body),  # 413
        ]
        out = []
        for options, headers in requests:
            response = client.post("/api/v1/stamps", headers=headers, **options)  # type: ignore[arg-type]
            entry_id = response.json().get("entry_id", "")
            body = (
                response.content.replace(entry_id.encode(), b"<id>")
                if entry_id
                else response.content
            )
            out.append((response.status_code, response.headers.raw, body))
        return out

    direct = answers(new_card(client))

    async def past_it(self: DirectStamp, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    monkeypatch.setattr(DirectStamp, "__call__", past_it)
    routed = answers(new_card(client))
    assert [status for status, _, _ in direct] == [
        201,
        201,
        422,
        429,
        401,
        401,
        400,
        422,
        422,
        400,
        413,
    ]
    assert direct == routed


def test_unknown_and_deleted_cards(client: TestClient, shop: Shop, card: str) -> None:
    assert client.delete(f"/api/v1/cards/{card}").status_code == 204
    response = stamp(client, shop, card)
    assert response.status_code == 410
    assert response.json()["detail"] == "This card was deleted by its owner."
