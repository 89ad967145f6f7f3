"""The owner's first day and inbox in a real browser, in English and German, at 1280, 1024,
390 and 320 px: a new shop's checklist ticked from what the shop has, one dismissible note on
hidden figures, a short page without empty charts, legible charts that fit a phone; and an inbox
with the feedback first and hiding kept apart from replying, behind a confirmation.
"""

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlmodel import Session

from app.merchants import service as merchants
from app.merchants.models import Merchant
from tests.helpers.api import give, new_card, stamp, visited_card
from tests.helpers.browser import LiveServer, screenshot
from tests.helpers.shops import Shop, make_shop

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1280, 900), "tablet": (1024, 768), "phone": (390, 844), "narrow": (320, 700)}


def log_in(page: Page, shop: Shop) -> None:
    page.goto("/merchant/login?lang=en")
    page.get_by_label("E-mail").fill(shop.owner_email)
    page.get_by_label("Password").fill(shop.owner_password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/merchant/dashboard$"))


def overflow(page: Page) -> int:
    """How far the page is wider than the window (0: no sideways scrolling)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def steps(page: Page) -> dict[str, str]:
    items = page.locator("#getting-started .checklist li")
    return {
        str(items.nth(i).get_attribute("data-step")): str(items.nth(i).get_attribute("class"))
        for i in range(items.count())
    }


def revoke_all(app: FastAPI, shop: Shop) -> None:
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        merchants.revoke_device(
            session=session, merchant=merchant, device_id=shop.device_id, now=app.state.clock()
        )
        session.commit()


def test_a_new_shops_first_day(
    app: FastAPI, page: Page, shop: Shop, live_server: LiveServer
) -> None:
    revoke_all(app, shop)  # a shop with nothing yet: no till, no card, no stamp
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, shop)
    expect(page.get_by_role("heading", name="Getting started")).to_be_visible()
    assert steps(page) == {"poster": "todo", "till": "todo", "stamp": "todo"}
    start = page.locator("#getting-started")
    for name, href in (
        ("Print the counter poster", "/merchant/print"),
        ("Pair a till", "/merchant/devices"),
        ("Try a stamp", f"/m/{shop.slug}"),
    ):
        expect(start.get_by_role("link", name=name)).to_have_attribute("href", href)
    # One explanation of hidden figures, not a tile per figure saying so.
    expect(page.locator("#privacy-note")).to_have_count(1)
    expect(page.locator(".hidden-figure").filter(visible=True)).to_have_count(0)

    # A card from the poster's page, a till, a stamp: each step ticks itself.
    page.goto(f"/m/{shop.slug}")
    page.get_by_role("button", name="Get my card").click()
    page.wait_for_url(re.compile(r"/c/"))
    till = make_shop(app, "Elsewhere")  # a second shop's card must not tick this one
    with Session(app.state.engine, expire_on_commit=False) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        device, secret = merchants.create_device(
            session=session, merchant=merchant, now=app.state.clock()
        )
        session.commit()
    with TestClient(app) as api:
        assert stamp(api, till, new_card(api)).status_code == 201
        page.goto("/merchant/dashboard")
        assert steps(page) == {"poster": "done", "till": "done", "stamp": "todo"}
        mine = Shop(**{**shop.__dict__, "device_id": device.id or 0, "secret": secret})
        assert stamp(api, mine, new_card(api)).status_code == 201
    page.goto("/merchant/dashboard")
    assert steps(page) == {"poster": "done", "till": "done", "stamp": "done"}
    expect(page.locator(".checklist li.done .step-state").last).to_have_text(
        "Done: your shop has given its first stamp."
    )
    # A short first screen: the old page of hidden tiles and hatched charts was 3,500 px long.
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 1500, height
    screenshot(page, "owner-first-day-desktop", full_page=True)

    # Read once, the note stays away, also after a reload.
    page.get_by_role("button", name="Got it").click()
    expect(page.locator("#privacy-note")).to_have_count(0)
    page.reload()
    expect(page.locator("#privacy-note")).to_have_count(0)
    expect(page.get_by_role("heading", name="Getting started")).to_be_visible()

    # The folded figures: empty charts are one short line each, not hatched boxes.
    page.get_by_text("All figures of the period").click()
    expect(page.locator("#trend-h")).to_be_visible()
    expect(page.locator("svg.chart")).to_have_count(0)
    expect(page.locator(".empty-chart").first).to_be_visible()

    for name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        assert overflow(page) <= 0, (name, overflow(page))
    screenshot(page, "owner-first-day-320", full_page=True)

    page.goto("/merchant/dashboard?lang=de")
    expect(page.get_by_role("heading", name="Erste Schritte")).to_be_visible()
    expect(page.get_by_role("link", name="Einen Stempel ausprobieren")).to_be_visible()
    expect(page.locator(".checklist li.done .step-state").first).to_have_text(
        "Erledigt: Über Ihr Plakat wurde eine Karte erstellt."
    )
    expect(page.locator("#privacy-note")).to_have_count(0)
    assert overflow(page) <= 0


def test_a_new_shops_note_in_german(page: Page, shop: Shop, live_server: LiveServer) -> None:
    """The note in German, dismissed in German; a till is already paired (make_shop's)."""
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, shop)
    page.goto("/merchant/dashboard?lang=de")
    assert steps(page) == {"poster": "todo", "till": "done", "stamp": "todo"}
    note = page.locator("#privacy-note")
    expect(note).to_contain_text("Warum manche Zahlen verborgen sind")
    assert overflow(page) <= 0
    note.get_by_role("button", name="Verstanden").click()
    expect(page.locator("#privacy-note")).to_have_count(0)  # the answer came, the cookie with it
    page.reload()
    expect(page.locator("#privacy-note")).to_have_count(0)


def chart_checks(page: Page) -> dict[str, Any]:
    """The smallest chart text as shown on screen, and whether an axis title overlaps a tick."""
    return dict(
        page.evaluate(
            """() => {
      const sizes = [...document.querySelectorAll('svg.chart text')]
        .filter(t => t.getBoundingClientRect().width > 0)
        .map(t => t.getBoundingClientRect().height);
      const overlaps = [...document.querySelectorAll('.axis-title')].filter(title => {
        const a = title.getBoundingClientRect();
        return [...title.parentElement.querySelectorAll('svg text')].some(t => {
          const b = t.getBoundingClientRect();
          return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
        });
      }).length;
      const tops = [...document.querySelectorAll('.period-choice a')]
        .map(a => Math.round(a.getBoundingClientRect().top));
      const rows = new Set(tops).size;
      return {smallest: Math.min(...sizes), count: sizes.length, overlaps, rows};
    }"""
        )
    )


def test_the_dashboard_fits_every_screen(
    app: FastAPI, page: Page, shop: Shop, live_server: LiveServer
) -> None:
    # Twelve cards: more than k, so the dashboard draws its charts.
    with TestClient(app) as api:
        for _ in range(12):
            visited_card(api, shop)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, shop)
    expect(page.locator("#getting-started")).to_have_count(0)
    expect(page.locator("#privacy-note")).to_have_count(1)
    for language in ("en", "de"):
        page.goto(f"/merchant/dashboard?lang={language}")
        for name, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            assert overflow(page) <= 0, (language, name, overflow(page))
            checks = chart_checks(page)
            assert checks["count"] > 0
            # Text in an SVG scales with it: a line box of 12 px font is about 14 px tall.
            assert checks["smallest"] >= 11, (language, name, checks)
            assert checks["overlaps"] == 0, (language, name, checks)
            assert checks["rows"] == 1, (language, name, checks)
        screenshot(page, f"owner-dashboard-320-{language}", full_page=True)


def test_the_inbox_puts_feedback_first(
    app: FastAPI, page: Page, shop: Shop, live_server: LiveServer
) -> None:
    with TestClient(app) as api:
        token = visited_card(api, shop)
        assert give(api, token, shop, rating=1, comment="Rude staff").status_code == 201
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, shop)
    for language, reply, hide, confirm, done in (
        ("en", "Send reply", "Hide as abusive", "Yes, hide it", "Show again"),
        ("de", "Antwort senden", "Als beleidigend verbergen", "Ja, verbergen", "Wieder zeigen"),
    ):
        page.goto(f"/merchant/feedback?lang={language}")
        item = page.locator("#inbox li").first
        figures = page.locator("#figures")
        assert item.bounding_box()["y"] < figures.bounding_box()["y"]  # type: ignore[index]
        nav = page.locator(".merchant-nav a[aria-current='page']")
        expect(nav).to_have_text("Feedback")
        for width, height in SIZES.values():
            page.set_viewport_size({"width": width, "height": height})
            assert overflow(page) <= 0
            send = item.get_by_role("button", name=reply).bounding_box()
            summary = item.locator(".hide-box > summary").bounding_box()
            assert send and summary
            # Apart: below the reply with a gap, on the far side.
            assert summary["y"] - (send["y"] + send["height"]) >= 16, (width, send, summary)
            far = summary["x"] + summary["width"] - (send["x"] + send["width"])
            assert far >= 60, (width, send, summary)
        screenshot(page, f"owner-inbox-320-{language}", full_page=True)
        # Opening it only asks; the feedback is hidden after the explicit second button.
        item.locator(".hide-box > summary").click()
        expect(item.get_by_text(hide, exact=True)).to_be_visible()
        expect(item.locator(".status.off")).to_have_count(0)
        item.get_by_role("button", name=confirm).click()
        expect(page.locator("#inbox li").first.locator(".status.off")).to_be_visible()
        page.locator("#inbox li").first.get_by_role("button", name=done).click()
        expect(page.locator("#inbox li").first.locator(".status.off")).to_have_count(0)
        page.set_viewport_size({"width": 1280, "height": 900})
