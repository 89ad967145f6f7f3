"""The customer pages as HTML: right content in both languages, forms that work without
JavaScript, friendly refusals, and markup the strict CSP allows."""

import json
import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from tests.helpers.api import new_card, stamp
from tests.helpers.clock import Clock
from tests.helpers.shops import Shop

HTML = {"Accept": "text/html", "Accept-Language": "en"}
GERMAN = {"Accept": "text/html", "Accept-Language": "de-AT,de;q=0.9"}


class InlineCode(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, styles and handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "style":
            self.blocked.append("<style>")
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.blocked.append("inline <script>")
        for name, _value in attrs:
            if name == "style" or name.startswith("on"):
                self.blocked.append(f"{tag} {name}=")


def assert_csp_clean(html: str) -> None:
    parser = InlineCode()
    parser.feed(html)
    assert not parser.blocked, parser.blocked


def test_home_gets_a_card_with_one_tap_without_javascript(client: TestClient) -> None:
    home = client.get("/", headers=HTML)
    assert home.status_code == 200
    assert 'action="/cards/new"' in home.text and "Get my card" in home.text
    assert_csp_clean(home.text)
    made = client.post("/cards/new", headers=HTML, follow_redirects=False)
    assert made.status_code == 303
    location = made.headers["location"]
    token = re.fullmatch(r"/c/([A-Z2-7]{136})#new", location)
    assert token, location
    assert client.get(f"/api/v1/cards/{token[1]}").status_code == 200


def test_poster_page_shows_the_shop_and_its_program(client: TestClient, shop: Shop) -> None:
    page = client.get(f"/m/{shop.slug}", headers=HTML)
    assert page.status_code == 200
    assert "Café Sonne" in page.text
    assert "10 stamps → 1 free coffee" in page.text
    assert_csp_clean(page.text)
    german = client.get(f"/m/{shop.slug}", headers=GERMAN)
    assert "10 Stempel → 1 free coffee" in german.text  # the shop's own words stay as entered
    assert "Karte holen" in german.text
    missing = client.get("/m/no-such-shop", headers=HTML)
    assert missing.status_code == 404
    assert "There is no shop at this address." in missing.text


def test_card_page_carries_the_card_and_its_balances(
    client: TestClient, shop: Shop, card: str
) -> None:
    assert stamp(client, shop, card, count=3).status_code == 201
    page = client.get(f"/c/{card}", headers=HTML)
    assert page.status_code == 200
    assert_csp_clean(page.text)
    assert f'src="/api/v1/cards/{card}/qr.svg"' in page.text
    assert re.search(r'<img[^>]+id="qr"[^>]+alt="QR code of your treu card', page.text)
    data = re.search(r'<script type="application/json" id="card-data">(.*?)</script>', page.text)
    assert data
    view = json.loads(data[1])
    assert view["token"] == card
    assert [(c["merchant"]["name"], c["stamps"]) for c in view["view"]["cards"]] == [
        ("Café Sonne", 3)
    ]
    recovery = client.get(f"/api/v1/cards/{card}").json()["recovery_code"]
    assert recovery in page.text
    assert "Save your card" in page.text and "Add treu to your home screen" in page.text


def test_card_urls_in_any_case_lead_to_one_page(client: TestClient, card: str) -> None:
    upper = client.get(f"/C/{card}", headers=HTML, follow_redirects=False)
    assert upper.status_code == 308 and upper.headers["location"] == f"/c/{card}"
    typed = client.get(f"/c/{card.lower()}", headers=HTML, follow_redirects=False)
    assert typed.status_code == 308 and typed.headers["location"] == f"/c/{card}"
    data = client.get(f"/c/{card.lower()}/data", headers=HTML, follow_redirects=False)
    assert data.headers["location"] == f"/c/{card}/data"
    assert client.get("/c/NOTACARD", headers=HTML).status_code == 404


def test_a_deleted_card_page_says_so_and_lets_the_browser_forget_it(
    client: TestClient, card: str
) -> None:
    assert client.delete(f"/api/v1/cards/{card}").status_code == 204
    for path in (f"/c/{card}", f"/c/{card}/data"):
        page = client.get(path, headers=HTML)
        assert page.status_code == 410
        assert "This card was deleted" in page.text
        assert f'data-forget="{card}"' in page.text


def test_my_data_page_offers_export_and_delete(client: TestClient, card: str) -> None:
    page = client.get(f"/c/{card}/data", headers=GERMAN)
    assert page.status_code == 200
    assert_csp_clean(page.text)
    assert f'href="/api/v1/cards/{card}/export"' in page.text
    assert "Meine Daten herunterladen (JSON)" in page.text
    assert "Meine Karte löschen" in page.text


def test_merchants_page_lists_every_shop_with_a_program(
    client: TestClient, shop: Shop, other_shop: Shop
) -> None:
    page = client.get("/merchants", headers=HTML)
    assert page.status_code == 200
    assert_csp_clean(page.text)
    for name, line in (("Café Sonne", "10 stamps → 1 free coffee"),
                       ("Bäckerei Gruber", "5 stamps → 1 loaf")):  # fmt: skip
        assert name in page.text and line in page.text
    assert f'href="/m/{shop.slug}"' in page.text


def test_restore_form_brings_the_same_card_back(client: TestClient, card: str) -> None:
    code = client.get(f"/api/v1/cards/{card}").json()["recovery_code"]
    typed = code.lower().replace("-", " ")
    back = client.post("/restore", data={"recovery_code": typed}, headers=HTML,
                       follow_redirects=False)  # fmt: skip
    assert back.status_code == 303
    assert back.headers["location"] == f"/c/{card}#restored"
    wrong = client.post("/restore", data={"recovery_code": "AAAA-BBBB"}, headers=GERMAN)
    assert wrong.status_code == 404
    assert "Das ist kein Wiederherstellungscode." in wrong.text
    assert 'value="AAAA-BBBB"' in wrong.text  # what was typed stays, to fix the typo
    assert_csp_clean(wrong.text)


def test_restore_can_continue_to_a_claim_but_nowhere_else(client: TestClient, card: str) -> None:
    code = client.get(f"/api/v1/cards/{card}").json()["recovery_code"]
    claim = "/k/ABCDEFGHIJKLMNOPQRST"
    back = client.post("/restore", data={"recovery_code": code, "next": claim},
                       headers=HTML, follow_redirects=False)  # fmt: skip
    assert back.headers["location"] == f"{claim}#card={card}"
    elsewhere = client.post("/restore", data={"recovery_code": code, "next": "//evil.example"},
                            headers=HTML, follow_redirects=False)  # fmt: skip
    assert elsewhere.headers["location"] == f"/c/{card}#restored"


@pytest.mark.parametrize("count", [1, 3])
def test_claim_page_names_the_shop_and_the_stamps(
    client: TestClient, shop: Shop, count: int
) -> None:
    made = client.post("/api/v1/claims", json={"count": count}, headers=shop.auth).json()
    page = client.get(made["claim_url"].removeprefix("http://treu.test"), headers=HTML)
    assert page.status_code == 200
    assert_csp_clean(page.text)
    assert "Café Sonne" in page.text
    assert ("1 stamp for you" if count == 1 else f"{count} stamps for you") in page.text
    assert 'data-state="open"' in page.text
    upper = client.get(f"/K/{made['code']}", headers=HTML, follow_redirects=False)
    assert upper.headers["location"] == f"/k/{made['code']}"


def test_claim_page_says_when_a_code_is_used_or_expired(
    client: TestClient, clock: Clock, shop: Shop
) -> None:
    used = client.post("/api/v1/claims", json={}, headers=shop.auth).json()["code"]
    token = new_card(client)
    assert client.post(f"/api/v1/claims/{used}", json={"token": token}).status_code == 201
    page = client.get(f"/k/{used}", headers=GERMAN)
    assert "Dieser Code wurde schon verwendet." in page.text
    assert 'data-state="used"' in page.text
    old = client.post("/api/v1/claims", json={}, headers=shop.auth).json()["code"]
    clock.advance(121)
    assert "This code has expired." in client.get(f"/k/{old}", headers=HTML).text
    unknown = client.get("/k/AAAAAAAAAAAAAAAAAAAA", headers=HTML)
    assert unknown.status_code == 404
    assert "This code is not known." in unknown.text


def test_manifest_and_icons_are_served(client: TestClient) -> None:
    manifest = client.get("/static/manifest.webmanifest")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    body = manifest.json()
    assert body["start_url"] == "/card" and body["display"] == "standalone"
    for icon in body["icons"]:
        assert client.get(icon["src"]).status_code == 200
