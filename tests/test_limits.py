"""Request bodies over the limit get a 413 problem, whether they announce their length or not."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.helpers.shops import Shop

PROBLEM = "application/problem+json"


def chunks() -> Iterator[bytes]:
    """A body without Content-Length (chunked), past the limit."""
    for _ in range(40):  # 40 kB: past the 16 kB of Settings.max_body_bytes
        yield b"x" * 1000


@pytest.mark.parametrize(
    "path", ["/api/v1/stamps", "/api/v1/redemptions", "/api/v1/feedback", "/api/v1/claims"]
)
@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_refused_with_413(
    client: TestClient, settings: Settings, shop: Shop, path: str, chunked: bool
) -> None:
    headers = {**shop.auth, "Content-Type": "application/json"}
    body = chunks() if chunked else b"".join(chunks())
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM
    assert (
        response.json()["detail"]
        == f"Request bodies are limited to {settings.max_body_bytes} bytes."
    )


def test_a_form_over_the_limit_gets_a_page(client: TestClient) -> None:
    headers = {"Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded"}
    response = client.post("/merchant/login", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
