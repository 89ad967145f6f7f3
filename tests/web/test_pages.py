"""The page shell in a real browser: error pages are friendly, strict CSP holds."""

import pytest
from playwright.sync_api import Page

from tests.helpers.browser import LiveServer, screenshot

pytestmark = pytest.mark.browser


def test_unknown_page_is_friendly_in_the_browsers_language(
    page: Page, live_server: LiveServer
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    response = page.goto("/no-such-page")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    page.get_by_role("link", name="DE").click()
    assert page.locator("h1").inner_text() == "Nicht gefunden"
    assert page.get_by_role("link", name="Zurück zum Anfang").is_visible()
    screenshot(page, "error-page-phone")
    assert not [e for e in errors if "Content Security Policy" in e]
