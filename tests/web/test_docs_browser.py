"""The API documentation in a real browser: /docs shows Swagger UI, served by treu under its
own Content-Security-Policy, with every operation and an "Authorize" button, and nothing
blocked or fetched from elsewhere."""

import pytest
from playwright.sync_api import Browser, Request, expect

from tests.helpers.browser import LiveServer, screenshot

pytestmark = pytest.mark.browser

LAPTOP = {"viewport": {"width": 1280, "height": 900}}


def test_docs_show_the_operations_and_offer_authorize(
    browser: Browser, live_server: LiveServer
) -> None:
    context = browser.new_context(base_url=live_server.url, locale="en-GB", **LAPTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    elsewhere: list[str] = []

    def note(request: Request) -> None:
        if not request.url.startswith(live_server.url):
            elsewhere.append(request.url)

    page.on("request", note)
    page.goto("/docs")

    stamps = page.locator(".opblock-post").filter(has_text="/api/v1/stamps").first
    expect(stamps).to_be_visible(timeout=15_000)
    expect(stamps).to_contain_text("POST")
    expect(
        page.locator(".opblock-get").filter(has_text="/api/v1/cards/{token}").first
    ).to_be_visible()
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    # The device secret's lock is shown on the stamp.
    expect(stamps.locator(".authorization__btn")).to_be_visible()
    page.get_by_role("button", name="Authorize").click()
    expect(page.get_by_text("deviceSecret (http, Bearer)")).to_be_visible()
    expect(page.get_by_text("ownerSession (apiKey)")).to_be_visible()
    screenshot(page, "api-docs")
    assert errors == []  # nothing refused by the CSP, no script error
    assert elsewhere == []  # no CDN, no validator badge
    context.close()
