"""The devices page updates by itself while it shows a pairing code: once a tablet redeems the
code, the device list is fetched again and the code goes away, without a reload. The page asks
a small JSON endpoint that answers only the owner, about their own codes."""

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, BrowserContext, expect
from sqlmodel import Session

from app.merchants.pairing import redeem_pairing_code
from tests.helpers.browser import LiveServer, screenshot
from tests.helpers.clock import Clock
from tests.helpers.pages import HTML, form_token, log_in
from tests.helpers.shops import Shop, make_shop

EMAIL, PASSWORD = "owner@cafe-sonne.example", "treu-demo"


def pair(client: TestClient) -> tuple[str, str]:
    """Show a pairing code on the devices page: (its state URL, the code)."""
    token = form_token(client.get("/merchant/devices", headers=HTML).text)
    page = client.post("/merchant/devices/pair", data={"csrf_token": token}, headers=HTML).text
    state_url = re.search(r'data-state-url="([^"]+)"', page)
    code = re.search(r"/till/pair/([A-Z2-7]+)", page)
    assert state_url and code
    return state_url.group(1), code.group(1)


def test_the_pairing_state_is_the_owners_own(
    app: FastAPI, client: TestClient, shop: Shop, other_shop: Shop, clock: Clock
) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    state_url, code = pair(client)
    answer = client.get(state_url)
    assert answer.json() == {"state": "waiting", "device_id": None}
    assert answer.headers["cache-control"] == "no-store"
    with TestClient(app) as other:
        log_in(other, other_shop.owner_email, other_shop.owner_password)
        assert other.get(state_url).status_code == 404
    with TestClient(app) as stranger:
        assert "application/json" not in stranger.get(state_url).headers["content-type"]
    with Session(app.state.engine) as session:
        device_id = redeem_pairing_code(session=session, code=code, now=clock()).device.id
        session.commit()
    assert client.get(state_url).json() == {"state": "paired", "device_id": device_id}
    later, _ = pair(client)
    clock.advance(601)
    assert client.get(later).json()["state"] == "expired"


@pytest.mark.browser
def test_a_paired_tablet_appears_in_the_list_without_a_reload(
    app: FastAPI, live_server: LiveServer, browser: Browser, phone: BrowserContext, clock: Clock
) -> None:
    make_shop(app, "Café Sonne", owner_email=EMAIL, owner_password=PASSWORD)
    page = phone.new_page()
    errors: list[Any] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto("/merchant/devices")
    page.get_by_label("E-mail").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/merchant/devices$"))
    expect(page.locator(".device")).to_have_count(1)  # the till make_shop pairs
    page.get_by_placeholder("Name, e.g. Counter tablet").fill("Counter tablet")
    page.get_by_role("button", name="Show pairing QR code").click()
    pairing_url = page.locator(".pairing .url a").get_attribute("href")
    assert pairing_url
    # Anything the page keeps in memory survives only if it is not loaded again.
    page.evaluate("window.stillTheSamePage = true")

    tablet = browser.new_context(base_url=live_server.url, locale="en-GB")
    try:
        tablet.new_page().goto(pairing_url)
    finally:
        tablet.close()
    new = page.locator(".device", has_text="Counter tablet")
    expect(new.locator(".status")).to_have_text("Active", timeout=10_000)
    expect(page.locator(".device")).to_have_count(2)
    expect(page.get_by_text("The device is paired. It is in the list below.")).to_be_visible()
    expect(page.locator(".pairing")).to_be_hidden()  # the code is used: it leaves the screen
    assert page.evaluate("window.stillTheSamePage") is True
    screenshot(page, "merchant-devices-paired-phone", full_page=True)

    # A code nobody uses expires, and the page says so (in German too).
    page.goto("/merchant/devices?lang=de")
    page.get_by_role("button", name="QR-Code zum Koppeln zeigen").click()
    expect(page.locator(".pairing .qr svg")).to_be_visible()
    clock.advance(601)
    expect(page.get_by_text("Der Code ist abgelaufen.", exact=False)).to_be_visible()
    expect(page.locator(".pairing")).to_be_hidden()
    assert errors == []
