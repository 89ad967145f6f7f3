"""A customer and a till speaking the public JSON API, through a TestClient."""

import uuid
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from tests.helpers.shops import Shop


def new_card(client: TestClient) -> str:
    response = client.post("/api/v1/cards")
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def stamp(client: TestClient, shop: Shop, token: str, key: str | None = None, **body: Any) -> Any:
    headers = dict(shop.auth)
    headers["Idempotency-Key"] = key or uuid.uuid4().hex
    return client.post("/api/v1/stamps", json={"token": token, **body}, headers=headers)


def redeem(client: TestClient, shop: Shop, token: str, key: str | None = None, **body: Any) -> Any:
    headers = dict(shop.auth)
    headers["Idempotency-Key"] = key or uuid.uuid4().hex
    return client.post("/api/v1/redemptions", json={"token": token, **body}, headers=headers)


def void(client: TestClient, shop: Shop, entry_id: str, key: str | None = None) -> Any:
    headers = dict(shop.auth)
    headers["Idempotency-Key"] = key or uuid.uuid4().hex
    return client.post(f"/api/v1/entries/{entry_id}/void", headers=headers)


def visited_card(client: TestClient, shop: Shop) -> str:
    """A new card with one stamp at the shop: a visit."""
    token = new_card(client)
    response = stamp(client, shop, token)
    assert response.status_code == 201, response.text
    return token


def give(client: TestClient, token: str, shop: Shop, rating: int = 4, **fields: Any) -> Response:
    """Feedback from the card's holder about the shop."""
    body = {"token": token, "merchant": shop.slug, "rating": rating, **fields}
    return client.post("/api/v1/feedback", json=body)


def till_programs(client: TestClient, shop: Shop) -> dict[str, dict[str, Any]]:
    """The programs the shop's till offers, by name."""
    response = client.get("/api/v1/till", headers=shop.auth)
    assert response.status_code == 200
    return {p["name"]: p for p in response.json()["programs"]}


def card_programs(client: TestClient, token: str) -> dict[str, dict[str, Any]]:
    """The card's programs as its holder sees them, by program name."""
    response = client.get(f"/api/v1/cards/{token}")
    assert response.status_code == 200
    return {c["program"]["name"]: c for c in response.json()["cards"]}
