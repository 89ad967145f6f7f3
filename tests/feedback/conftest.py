"""Helpers for feedback tests: a card with a visit, giving feedback, an owner's login."""

import re
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from tests.conftest import Shop, new_card, stamp

HTML = {"Accept": "text/html"}


def visited_card(client: TestClient, shop: Shop) -> str:
    """A new card with one stamp at the shop: a visit."""
    token = new_card(client)
    response = stamp(client, shop, token)
    assert response.status_code == 201, response.text
    return token


def give(client: TestClient, token: str, shop: Shop, rating: int = 4, **fields: Any) -> Response:
    body = {"token": token, "merchant": shop.slug, "rating": rating, **fields}
    return client.post("/api/v1/feedback", json=body)


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def log_in(client: TestClient, shop: Shop) -> None:
    """Log in as the shop's owner, the way the login page does."""
    page = client.get("/merchant/login", headers=HTML)
    data = {
        "email": shop.owner_email,
        "password": shop.owner_password,
        "csrf_token": form_token(page.text),
    }
    response = client.post("/merchant/login", data=data, headers=HTML, follow_redirects=False)
    assert response.status_code == 303, response.text
