"""Every page, checked by axe-core (from npm, the lock file's version) in real Chromium, in
German and in English: no violation of WCAG 2.x A/AA or axe's best practices.

A customer's pages on a phone (a card with stamps at two shops, its data, feedback, restore,
the shops, the imprint and the privacy notice), the owner's on a laptop (logged in: dashboard,
inbox, program, regulars, promotions, devices, exports, print, account), the till on a tablet
(pairing and the working till), and the pages anyone may land on (start, the API reference,
the problem types, not found).
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.helpers.api import give, new_card, stamp
from tests.helpers.browser import PHONE, LiveServer
from tests.helpers.clock import Clock
from tests.helpers.shops import Shop, new_pairing

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
LOCALES = ("en-GB", "de-AT")
LAPTOP = {"viewport": {"width": 1280, "height": 860}}
TABLET = {"viewport": {"width": 1024, "height": 768}, "has_touch": True}


def violations(page: Page) -> list[str]:
    """axe-core's violations on the page as it stands, one line each (rule, impact, where)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .map((v) => ({id: v.id, impact: v.impact,
                          where: v.nodes.slice(0, 3).map((n) => n.target.join(" "))}))"""
    )
    return [f"{page.url}: {v['id']} ({v['impact']}) at {v['where']}" for v in found]


def check(page: Page, paths: list[str], ready: str = "body") -> list[str]:
    """Open each page in turn and collect what axe finds on it."""
    found: list[str] = []
    for path in paths:
        response = page.goto(path)
        assert response is not None and response.status < 500, path
        expect(page.locator(ready).first).to_be_visible(timeout=20_000)
        found += violations(page)
    return found


@pytest.fixture
def context_of(browser: Browser, live_server: LiveServer) -> Iterator[Any]:
    made: list[BrowserContext] = []

    def make(locale: str, size: dict[str, Any]) -> BrowserContext:
        context = browser.new_context(base_url=live_server.url, locale=locale, **size)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.mark.parametrize("locale", LOCALES)
def test_a_customers_pages_have_no_axe_violations(
    context_of: Any, client: TestClient, shop: Shop, other_shop: Shop, clock: Clock,
    locale: str,
) -> None:  # fmt: skip
    token = new_card(client)
    assert stamp(client, other_shop, token, count=3).status_code == 201
    clock.advance(61)
    assert stamp(client, shop, token, count=4).status_code == 201
    assert give(client, token, shop, rating=5, comment="Guter Kaffee").status_code == 201
    page = context_of(locale, PHONE).new_page()
    found = check(
        page,
        ["/", "/merchants", f"/m/{shop.slug}", f"/c/{token}/data", "/restore", "/imprint",
         "/privacy", f"/c/{token}/feedback/{shop.slug}", "/no-such-page"],
    )  # fmt: skip
    # The card page last: with its two shops' cards drawn (one with a reward due).
    page.goto(f"/c/{token}")
    expect(page.locator(".shop-card")).to_have_count(2)
    found += violations(page)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("locale", LOCALES)
def test_the_owners_pages_have_no_axe_violations(
    context_of: Any, client: TestClient, shop: Shop, locale: str
) -> None:
    for _ in range(3):
        stamp(client, shop, new_card(client))
    page = context_of(locale, LAPTOP).new_page()
    found = check(page, ["/merchant/login"])
    page.locator("input[name=email]").fill(shop.owner_email)
    page.locator("input[name=password]").fill(shop.owner_password)
    page.locator("form button[type=submit]").first.click()
    expect(page).to_have_url(re.compile(r"/merchant/dashboard"))
    found += check(
        page,
        ["/merchant/dashboard", "/merchant/feedback", "/merchant/program",
         "/merchant/program/new", "/merchant/regulars", "/merchant/promotions",
         "/merchant/promotions/new", "/merchant/devices", "/merchant/exports", "/merchant/print",
         "/merchant/account"],
    )  # fmt: skip
    assert not found, "\n".join(found)


@pytest.mark.parametrize("locale", LOCALES)
def test_the_till_and_the_reference_pages_have_no_axe_violations(
    context_of: Any, app: FastAPI, shop: Shop, locale: str
) -> None:
    page = context_of(locale, TABLET).new_page()
    found = check(page, ["/till/pair", "/problems", "/problems/404"])
    # The API reference once Swagger UI has drawn it, with an operation and the schemas open.
    found += check(page, ["/docs"], ready=".swagger-ui .opblock")
    page.locator(".opblock-post .opblock-summary-control").first.click()
    page.locator(".models h4 button").first.click()
    expect(page.locator(".opblock-body").first).to_be_visible()
    found += violations(page)
    page.goto(new_pairing(app, shop, "Counter").url)
    expect(page).to_have_url(re.compile(r"/till$"))
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    found += violations(page)
    assert not found, "\n".join(found)
