"""Headers that keep a card's and a shop's data out of caches, and the transport safe
(app/web/security.py): no-store wherever a card or a shop's figures travel, nosniff on the
API too, HSTS when treu is served over https."""

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.tokens import qr
from tests.helpers.api import give, stamp
from tests.helpers.clock import Clock
from tests.helpers.pages import HTML, log_in_owner
from tests.helpers.shops import Shop, make_shop

HSTS = "strict-transport-security"


def test_every_answer_with_a_card_or_a_shops_data_is_never_stored(
    client: TestClient, shop: Shop
) -> None:
    created = client.post("/api/v1/cards")
    card = created.json()["token"]
    stamped = stamp(client, shop, card)
    assert give(client, card, shop).status_code == 201
    log_in_owner(client, shop)
    restore = {"recovery_code": created.json()["recovery_code"]}
    answers = {
        "POST /api/v1/cards": created,
        "POST /api/v1/stamps": stamped,
        "/c/{token}": client.get(f"/c/{card}", headers=HTML),
        "/c/{token}/data": client.get(f"/c/{card}/data", headers=HTML),
        "GET /api/v1/cards/{token}": client.get(f"/api/v1/cards/{card}"),
        "export": client.get(f"/api/v1/cards/{card}/export"),
        "card feedback": client.get(f"/api/v1/cards/{card}/feedback"),
        "restore": client.post("/api/v1/cards/restore", json=restore),
        "/merchant/dashboard": client.get("/merchant/dashboard", headers=HTML),
        "/api/v1/merchant/kpis": client.get("/api/v1/merchant/kpis"),
        "a refusal": client.get(f"/api/v1/cards/{card[:-4]}AAAA"),
    }
    for name, response in answers.items():
        assert response.status_code < 500, (name, response.text)
        assert response.headers.get("cache-control") == "no-store", name
    # Pages about nobody's data stay cacheable by the browser's rules.
    for path in ("/", "/merchants", f"/m/{shop.slug}"):
        assert "cache-control" not in client.get(path, headers=HTML).headers, path


def test_the_card_qr_may_be_kept_privately_it_holds_the_token_only(
    client: TestClient, shop: Shop, card: str, settings: Settings
) -> None:
    first = client.get(f"/api/v1/cards/{card}/qr.svg")
    assert first.status_code == 200
    assert first.headers["cache-control"] == "private, max-age=86400"
    # It draws the card URL and nothing else: the same picture whatever the card holds, so a
    # kept copy shows no more than the token in its own address.
    assert first.text == qr.qr_svg(qr.card_qr_text(settings.base_url, card))
    assert stamp(client, shop, card, count=3).status_code == 201
    assert client.get(f"/api/v1/cards/{card}/qr.svg").content == first.content


def test_the_api_is_never_sniffed(client: TestClient, shop: Shop, card: str) -> None:
    for response in (
        client.get(f"/api/v1/cards/{card}"),
        client.get("/api/v1/cards/nope"),
        stamp(client, shop, card),  # the stamp's direct way
        stamp(client, shop, card),  # a refusal on it (cooldown)
        client.get("/api/v1/till", headers=shop.auth),
    ):
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert HSTS not in response.headers  # served over http


@pytest.fixture
def https_app(settings: Settings, clock: Clock) -> Iterator[FastAPI]:
    application = create_app(settings.model_copy(update={"public_url": "https://treu.test"}), clock)
    yield application
    application.state.writer.stop()
    application.state.engine.dispose()


def test_https_answers_carry_hsts(https_app: FastAPI) -> None:
    shop = make_shop(https_app, "Café Sonne")
    with TestClient(https_app, base_url="https://treu.test") as client:
        card = client.post("/api/v1/cards").json()["token"]
        answers = [
            client.get("/", headers=HTML),
            client.get(f"/c/{card}", headers=HTML),
            client.get(f"/api/v1/cards/{card}"),
            stamp(client, shop, card),
            stamp(client, shop, card),  # refused (cooldown), on the direct way too
            client.get("/static/css/base.css"),
            client.get("/nope", headers=HTML),
        ]
    for response in answers:
        assert response.headers[HSTS] == "max-age=31536000", response.url
