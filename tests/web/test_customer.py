"""The customer's phone, in real Chromium: get a card from a shop's poster, see its QR, watch a
stamp arrive, open the card offline, switch language, restore it on another phone, delete it."""

import re
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from tests.helpers.browser import PHONE, LiveServer, decode_qr, screenshot
from tests.helpers.shops import Shop

pytestmark = pytest.mark.browser

STAMP_SECONDS = 3_000  # ms: the page polls every 1.5 s; a stamp must show within about two


def stamp_over_http(live_server: LiveServer, shop: Shop, token: str, count: int = 1) -> None:
    """The till's request, sent to the running server as a real till would."""
    headers = {**shop.auth, "Idempotency-Key": uuid.uuid4().hex}
    answer = httpx.post(f"{live_server.url}/api/v1/stamps", headers=headers,
                        json={"token": token, "count": count})  # fmt: skip
    assert answer.status_code == 201, answer.text


def token_of(page: Page) -> str:
    found = re.search(r"/c/([A-Z2-7]{136})$", page.url)
    assert found, page.url
    return found[1]


def csp_violations(page: Page) -> list[str]:
    violations: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", record)
    return violations


def wait_until_offline_ready(page: Page) -> None:
    """The service worker controls the page and holds the page, its QR and the card's figures."""
    page.wait_for_function("navigator.serviceWorker && navigator.serviceWorker.controller")
    page.wait_for_function(
        """async () => {
            const needed = [location.pathname, document.getElementById("qr").src,
                            "/api/v1/cards/" + location.pathname.split("/")[2]];
            for (const url of needed) if (!(await caches.match(url))) return false;
            return true;
        }"""
    )


@pytest.fixture
def fresh_phone(browser: Browser, live_server: LiveServer) -> Iterator[BrowserContext]:
    """Another phone: nothing stored, nothing cached."""
    context = browser.new_context(base_url=live_server.url, locale="en-GB", **PHONE)
    yield context
    context.close()


def test_a_customer_story_on_the_phone(
    page: Page, phone: BrowserContext, fresh_phone: BrowserContext, live_server: LiveServer,
    shop: Shop,
) -> None:  # fmt: skip
    violations = csp_violations(page)

    # The shop's poster: its name and program, one tap to a card.
    page.goto(f"/m/{shop.slug}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Café Sonne")
    expect(page.get_by_text("10 stamps → 1 free coffee")).to_be_visible()
    page.get_by_role("button", name="Get my card").click()
    page.wait_for_url(re.compile(r"/c/[A-Z2-7]+$"))
    token = token_of(page)
    assert page.evaluate("localStorage.getItem('treu.card')") == token
    expect(page.locator("#welcome")).to_be_visible()
    # The shop the card was made at, empty, at once (issue 24).
    expect(page.locator("#m-cafe-sonne").get_by_text("0 of 10 stamps")).to_be_visible()

    # The QR is there, large, with a text alternative, and a real decoder reads the card URL.
    qr = page.get_by_role("img", name=re.compile("QR code of your treu card"))
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box and box["width"] >= 280, box
    page.wait_for_function("document.getElementById('qr').complete")
    decoded = decode_qr(qr.screenshot())
    assert len(decoded) == 1
    assert decoded[0].lower() == f"{live_server.url}/c/{token}".lower()

    # The cashier stamps it: the page shows it within about two seconds, without a reload.
    page.evaluate("window.notReloaded = true")
    stamp_over_http(live_server, shop, token)
    cafe = page.locator("#m-cafe-sonne")
    expect(cafe.get_by_text("1 of 10 stamps")).to_be_visible(timeout=STAMP_SECONDS)
    expect(cafe.locator(".stamp.filled")).to_have_count(1)
    expect(page.locator("#toast")).to_contain_text("+1 at Café Sonne")
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "card-page-phone")  # what the phone shows as the stamp arrives

    # Offline: the card opens with its QR and last figures, and says they may be old.
    wait_until_offline_ready(page)
    phone.set_offline(True)
    page.reload()
    expect(page.locator("#offline")).to_contain_text("You are offline")
    expect(page.locator("#m-cafe-sonne").get_by_text("1 of 10 stamps")).to_be_visible()
    page.wait_for_function("document.getElementById('qr').naturalWidth > 0")
    screenshot(page, "card-page-phone-offline", full_page=True)
    phone.set_offline(False)

    # German, remembered for the next page.
    page.goto(f"/c/{token}")
    page.get_by_role("link", name="DE", exact=True).click()
    expect(page.get_by_role("heading", name="Meine treu-Karte")).to_be_visible()
    expect(page.locator("#m-cafe-sonne").get_by_text("1 von 10 Stempeln")).to_be_visible()
    page.goto("/merchants")
    expect(page.get_by_role("heading", level=1)).to_have_text("Wo deine Karte gilt")
    page.get_by_role("link", name="EN", exact=True).click()
    code = page.goto(f"/c/{token}") and page.locator("#recovery-code").inner_text()

    # Another phone: restore from the recovery code, typed sloppily. Same card, same stamps.
    other = fresh_phone.new_page()
    other_violations = csp_violations(other)
    other.goto("/")
    other.get_by_role("link", name="I have a card on another phone").click()
    other.get_by_label("Recovery code").fill(code.lower().replace("-", " "))
    other.get_by_role("button", name="Restore my card").click()
    other.wait_for_url(re.compile(r"/c/[A-Z2-7]+$"))
    assert token_of(other) == token
    expect(other.locator("#restored")).to_be_visible()
    expect(other.locator("#m-cafe-sonne").get_by_text("1 of 10 stamps")).to_be_visible()

    # My data: delete, with a confirmation; then the browser forgets it and the server refuses it.
    other.get_by_role("link", name="My data: export or delete").click()
    other.get_by_role("button", name="Delete my card…").click()
    expect(other.get_by_text("Really delete this card and all its stamps?")).to_be_visible()
    other.get_by_role("button", name="Yes, delete my card").click()
    expect(other.get_by_role("heading", name="Your card is deleted")).to_be_visible()
    assert other.evaluate("localStorage.getItem('treu.card')") is None
    assert httpx.get(f"{live_server.url}/api/v1/cards/{token}").status_code == 410
    other.goto("/card")
    expect(other.get_by_role("heading", name="No card in this browser yet")).to_be_visible()

    # The first phone finds out on its next look and forgets the card too.
    page.goto(f"/c/{token}")
    expect(page.get_by_role("heading", name="This card was deleted")).to_be_visible()
    assert page.evaluate("localStorage.getItem('treu.card')") is None
    assert not violations and not other_violations, violations + other_violations


def test_a_claim_code_adds_its_stamps_once(
    page: Page, fresh_phone: BrowserContext, live_server: LiveServer, shop: Shop,
    other_shop: Shop,
) -> None:  # fmt: skip
    def claim_url(at: Shop, count: int = 1) -> str:
        made = httpx.post(f"{live_server.url}/api/v1/claims", headers=at.auth,
                          json={"count": count})  # fmt: skip
        assert made.status_code == 201, made.text
        return str(made.json()["claim_url"])

    # No card yet: the claim page makes one, then claims, and the new stamps are drawn as new.
    first = claim_url(shop, 2)
    page.goto(first)
    expect(page.get_by_role("heading", level=1)).to_have_text("2 stamps for you")
    page.get_by_role("button", name="Get my card and collect").click()
    page.wait_for_url(re.compile(r"/c/[A-Z2-7]+$"))
    expect(page.locator("#m-cafe-sonne").get_by_text("2 of 10 stamps")).to_be_visible()
    expect(page.locator("#m-cafe-sonne .stamp.new")).to_have_count(2)

    # With a card in this browser, a code is claimed as soon as it is opened.
    page.goto(claim_url(other_shop))
    page.wait_for_url(re.compile(r"/c/[A-Z2-7]+$"))
    bakery = page.locator(f"#m-{other_shop.slug}")
    expect(bakery.get_by_text("1 of 5 stamps")).to_be_visible()
    expect(page.locator("#toast")).to_contain_text("+1 at Bäckerei Gruber")

    # The shop's rules still apply: a second stamp inside the cooldown is explained, not lost.
    page.goto(claim_url(shop))
    expect(page.locator("#claim-status")).to_contain_text("stamped here a moment ago")

    # The first code again, on another phone with another card: refused, in words.
    other = fresh_phone.new_page()
    other.goto("/")
    other.get_by_role("button", name="Get my card").click()
    other.wait_for_url(re.compile(r"/c/[A-Z2-7]+$"))
    other.goto(first)
    expect(other.get_by_text("This code was already used.")).to_be_visible()


def test_card_page_first_load_is_small_and_stays_on_this_server(
    fresh_phone: BrowserContext, live_server: LiveServer, shop: Shop
) -> None:
    token = httpx.post(f"{live_server.url}/api/v1/cards").json()["token"]
    stamp_over_http(live_server, shop, token, count=3)
    page = fresh_phone.new_page()
    loaded: list[tuple[str, int]] = []
    page.on("requestfinished", lambda r: loaded.append((r.url, transferred(r))))
    page.goto(f"/c/{token}", wait_until="load")
    expect(page.locator("#m-cafe-sonne").get_by_text("3 of 10 stamps")).to_be_visible()
    page.wait_for_timeout(500)
    hosts = {urlsplit(url).netloc for url, _ in loaded if not url.startswith(("data:", "blob:"))}
    assert hosts == {urlsplit(live_server.url).netloc}, hosts
    without_qr = sum(size for url, size in loaded if not url.endswith("/qr.svg"))
    assert any(url.endswith("/qr.svg") for url, _ in loaded)
    assert without_qr < 150_000, sorted(loaded, key=lambda x: -x[1])[:5]


def transferred(request: object) -> int:
    sizes = request.sizes()  # type: ignore[attr-defined]
    return int(sizes["responseBodySize"] + sizes["responseHeadersSize"])
