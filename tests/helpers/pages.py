"""An owner using the merchant area's HTML forms through a TestClient."""

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.helpers.shops import Shop

HTML = {"Accept": "text/html"}


def form_token(html: str) -> str:
    """The CSRF token of the page's form."""
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def log_in(client: TestClient, email: str, password: str, next_path: str = "") -> Any:
    """Post the login form as the login page does; returns the answer, whatever it is."""
    page = client.get("/merchant/login", headers=HTML)
    data = {"email": email, "password": password, "csrf_token": form_token(page.text)}
    if next_path:
        data["next"] = next_path
    return client.post("/merchant/login", data=data, headers=HTML, follow_redirects=False)


def log_in_owner(client: TestClient, shop: Shop) -> None:
    """Log in as the shop's owner, the way the login page does; it must work."""
    response = log_in(client, shop.owner_email, shop.owner_password)
    assert response.status_code == 303, response.text
