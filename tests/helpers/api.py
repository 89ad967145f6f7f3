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
