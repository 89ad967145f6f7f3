"""A café owner in a real browser: log in, change the reward, pair a tablet and revoke it,
export the daily figures, print the poster and a sheet of cards. Screenshots go to
test-artifacts/."""

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.helpers.api import new_card, stamp
from tests.helpers.browser import LiveServer, decode_qr, screenshot
from tests.helpers.shops import make_shop

pytestmark = pytest.mark.browser

DEMO_EMAIL, DEMO_PASSWORD = "owner@cafe-sonne.example", "treu-demo"
LAPTOP = {"viewport": {"width": 1280, "height": 860}}


def no_csp_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def log_in(page: Page, target: str) -> None:
    page.goto(target)
    expect(page).to_have_url(re.compile(r"/merchant/login\?next="))
    page.get_by_label("E-mail").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(target) + "$"))


def pdf_pages(page: Page) -> int:
    pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


def test_owner_runs_the_shop_from_a_phone(
    app: FastAPI, live_server: LiveServer, browser: Browser, phone: BrowserContext, tmp_path: Path
) -> None:
    shop = make_shop(app, "Café Sonne", owner_email=DEMO_EMAIL, owner_password=DEMO_PASSWORD)
    with TestClient(app) as api:
        for _ in range(3):
            assert stamp(api, shop, new_card(api)).status_code == 201

    page = phone.new_page()
    errors = no_csp_errors(page)
    page.goto("/merchant/program")
    screenshot(page, "merchant-login-phone")
    log_in(page, "/merchant/program")

    # Change the reward.
    expect(page.get_by_role("heading", name="Stamp program")).to_be_visible()
    page.get_by_label("Reward", exact=True).fill("1 cappuccino")
    page.get_by_role("button", name="Save program").click()
    expect(page.get_by_role("status")).to_have_text("The program was saved.")
    expect(page.locator(".offer-line")).to_have_text("10 stamps → 1 cappuccino")
    screenshot(page, "merchant-program-phone", full_page=True)

    # Pair a tablet: the owner shows the QR, the tablet opens its link and becomes a till.
    page.get_by_role("link", name="Devices").click()
    page.get_by_placeholder("Name, e.g. Counter tablet").fill("Counter tablet")
    page.get_by_role("button", name="Show pairing QR code").click()
    qr = page.locator(".pairing .qr svg")
    expect(qr).to_be_visible()
    screenshot(page, "merchant-pairing-phone")
    pairing_url = page.locator(".pairing .url a").get_attribute("href")
    assert pairing_url and "/till/pair/" in pairing_url
    shot = tmp_path / "pairing-qr.png"
    qr.screenshot(path=str(shot))
    assert decode_qr(shot) == [pairing_url]
    tablet = browser.new_context(base_url=live_server.url, locale="en-GB")
    try:
        till = tablet.new_page()
        till.goto(pairing_url)
        expect(till).to_have_url(re.compile(r"/till$"), timeout=10_000)
    finally:
        tablet.close()
    page.get_by_role("link", name="Done: show my devices").click()
    device = page.locator(".device", has_text="Counter tablet")
    expect(device.locator(".status")).to_have_text("Active")

    # Revoke it.
    device.get_by_text("Rename or revoke").click()
    device.get_by_role("button", name="Revoke this device").click()
    expect(page.get_by_role("status")).to_have_text(
        "The device was revoked. It can no longer add stamps."
    )
    expect(page.locator(".device", has_text="Counter tablet").locator(".status")).to_have_text(
        "Revoked"
    )
    screenshot(page, "merchant-devices-phone", full_page=True)

    # Export the daily figures (there is no row-level export: each row would be about one card).
    page.get_by_role("link", name="Exports").click()
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download daily figures (CSV)").click()
    download = download_info.value
    assert download.suggested_filename.startswith("treu-cafe-sonne-daily-")
    lines = Path(download.path()).read_text().strip().splitlines()
    assert lines[0].startswith('"day","visits","new_cards","scans","stamps"')
    # Today's three cards are fewer than k = 10: the file says so instead of the numbers.
    assert lines[1:] and all('"<10"' in line for line in lines[1:])
    screenshot(page, "merchant-exports-phone")

    # The counter poster: its QR leads to the shop's page, and it prints on one page.
    page.get_by_role("link", name="Print", exact=True).click()
    page.get_by_role("link", name="Poster A4").click()
    expect(page.locator(".poster .shop")).to_have_text("Café Sonne")
    screenshot(page, "merchant-poster-phone")
    poster = tmp_path / "poster.png"
    page.locator(".poster").screenshot(path=str(poster))
    assert decode_qr(poster) == [f"{live_server.url}/m/{shop.slug}"]
    assert pdf_pages(page) == 1

    # A sheet of ten cards prints on one A4 page.
    page.goto("/merchant/print")
    page.get_by_role("button", name="Make cards").click()
    expect(page.locator(".print-card")).to_have_count(10)
    screenshot(page, "merchant-cards-phone")
    first = tmp_path / "card.png"
    page.locator(".print-card").first.locator(".qr").screenshot(path=str(first))
    assert decode_qr(first)[0].startswith(f"{live_server.url}/C/".upper())
    assert pdf_pages(page) == 1

    # Log out (on a phone from the Account page): the area is closed again.
    page.get_by_role("link", name="Account").click()
    page.get_by_role("button", name="Log out", exact=True).click()
    expect(page.get_by_role("status").or_(page.locator(".notice"))).to_have_text(
        "You are logged out."
    )
    page.goto("/merchant/devices")
    expect(page).to_have_url(re.compile(r"/merchant/login"))
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_owner_on_a_laptop_in_german(
    app: FastAPI, live_server: LiveServer, browser: Browser
) -> None:
    make_shop(app, "Café Sonne", owner_email=DEMO_EMAIL, owner_password=DEMO_PASSWORD)
    laptop = browser.new_context(base_url=live_server.url, locale="de-AT", **LAPTOP)
    try:
        page = laptop.new_page()
        errors = no_csp_errors(page)
        page.goto("/merchant/program")
        page.get_by_label("E-Mail").fill(DEMO_EMAIL)
        page.get_by_label("Passwort").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Anmelden").click()
        expect(page.get_by_role("heading", name="Stempelprogramm")).to_be_visible()
        screenshot(page, "merchant-program-laptop-de", full_page=True)
        page.get_by_role("link", name="Geräte").click()
        page.get_by_role("button", name="QR-Code zum Koppeln zeigen").click()
        expect(page.locator(".pairing .qr svg")).to_be_visible()
        screenshot(page, "merchant-pairing-laptop-de")
        page.get_by_role("link", name="Drucken").click()
        screenshot(page, "merchant-print-laptop-de")
        page.get_by_role("link", name="Plakat A5").click()
        expect(page.locator(".poster.a5 .how")).to_contain_text("Mit der Handykamera scannen")
        screenshot(page, "merchant-poster-a5-laptop-de", full_page=True)
        assert pdf_pages(page) == 1
        page.get_by_role("link", name="Konto").click()
        screenshot(page, "merchant-account-laptop-de", full_page=True)
        assert not [e for e in errors if "Content Security Policy" in e], errors
    finally:
        laptop.close()
