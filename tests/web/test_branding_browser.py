"""Each shop looks like itself, in real Chromium: the owner uploads a logo (in German) and picks
a colour (in English; a too light one is refused first), and the shop's page and the
customer's card show both, on phones (320, 390 px), a tablet and a desktop. Screenshots:
test-artifacts/branding-*.png."""

import io
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, expect

from tests.helpers.api import new_card, stamp
from tests.helpers.browser import LiveServer, screenshot
from tests.helpers.shops import make_shop

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "owner@baeckerei-korn.example", "korn-und-kruste-2026"
ACCENT, ACCENT_RGB = "#1b5e20", "rgb(27, 94, 32)"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}
# Every screen the pages are checked on: small phone, phone, tablet, desktop.
SCREENS = ({"width": 320, "height": 640}, PHONE, {"width": 1024, "height": 768}, DESKTOP)
NO_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"


def logo_file(tmp_path: Path) -> Path:
    """A JPEG logo as an owner's phone would take it: larger than treu keeps."""
    image = Image.new("RGB", (900, 900), (255, 248, 225))
    ImageDraw.Draw(image).ellipse((100, 100, 800, 800), fill=(27, 94, 32))
    path = tmp_path / "korn.jpg"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue())
    return path


def loaded(page: Page, selector: str) -> int:
    """The natural width of the first image that matches (0: not loaded)."""
    return int(page.eval_on_selector(selector, "img => img.complete ? img.naturalWidth : 0"))


def color_of(page: Page, selector: str) -> str:
    return str(page.eval_on_selector(selector, "el => getComputedStyle(el).color"))


def test_the_owner_gives_the_shop_its_look_and_customers_see_it(
    app: FastAPI, live_server: LiveServer, browser: Browser, tmp_path: Path
) -> None:
    shop = make_shop(app, "Bäckerei Korn", owner_email=EMAIL, owner_password=PASSWORD)
    with TestClient(app) as api:
        card = new_card(api)
        assert stamp(api, shop, card, count=3).status_code == 201

    context = browser.new_context(base_url=live_server.url, locale="de-AT", viewport=PHONE)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        # German: log in and upload the logo.
        page.goto("/merchant/account")
        page.get_by_label("E-Mail").fill(EMAIL)
        page.get_by_label("Passwort").fill(PASSWORD)
        page.get_by_role("button", name="Anmelden").click()
        page.get_by_label("Logo-Bild (PNG, JPEG oder WebP, bis 2 MB)").set_input_files(
            logo_file(tmp_path)
        )
        page.get_by_role("button", name="Logo hochladen").click()
        expect(page.get_by_text("Ihr Logo wurde gespeichert.")).to_be_visible()
        assert loaded(page, ".look-part .shop-logo") == 512

        # English: a colour too light is refused with a darker suggestion, a dark one is kept.
        page.goto("/merchant/account?lang=en")
        page.get_by_label("Your colour").fill("#ffff00")
        page.get_by_role("button", name="Save colour").click()
        refusal = page.get_by_role("alert")
        expect(refusal).to_contain_text("too light to read")
        expect(refusal).to_contain_text(re.compile(r"such as #[0-9a-f]{6}"))
        screenshot(page, "branding-account-refused-phone-en", full_page=True)
        page.get_by_label("Your colour").fill(ACCENT)
        page.get_by_role("button", name="Save colour").click()
        expect(page.get_by_text("Your colour was saved.")).to_be_visible()
        screenshot(page, "branding-account-phone-en", full_page=True)

        # The shop's page, phone then desktop.
        page.goto(f"/m/{shop.slug}")
        expect(page.locator(".shop-intro .shop-logo")).to_be_visible()
        assert loaded(page, ".shop-intro .shop-logo") == 512
        assert color_of(page, ".shop-intro h1") == ACCENT_RGB
        assert page.eval_on_selector(
            ".get-card button", "b => getComputedStyle(b).backgroundColor"
        ) == ACCENT_RGB  # fmt: skip
        screenshot(page, "branding-shop-phone", full_page=True)
        for screen in SCREENS:
            page.set_viewport_size(screen)
            assert color_of(page, ".shop-intro h1") == ACCENT_RGB
            assert page.evaluate(NO_OVERFLOW), screen
        screenshot(page, "branding-shop-desktop", full_page=True)

        # The customer's card: this shop's card in its colour, with its logo.
        page.set_viewport_size(PHONE)
        page.goto(f"/c/{card}")
        shop_card = f"#m-{shop.slug}"
        expect(page.locator(f"{shop_card} .shop-logo")).to_be_visible()
        assert loaded(page, f"{shop_card} .shop-logo") == 512
        assert color_of(page, f"{shop_card} h3") == ACCENT_RGB
        filled = page.eval_on_selector(
            f"{shop_card} .stamp.filled", "s => getComputedStyle(s).backgroundColor"
        )
        assert filled == ACCENT_RGB
        page.locator(shop_card).scroll_into_view_if_needed()
        screenshot(page, "branding-card-phone")
        for screen in SCREENS:
            page.set_viewport_size(screen)
            assert color_of(page, f"{shop_card} h3") == ACCENT_RGB
            assert page.evaluate(NO_OVERFLOW), screen
        screenshot(page, "branding-card-desktop")
    finally:
        context.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
