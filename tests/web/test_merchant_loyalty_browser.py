"""An owner sets up a happy hour in a real browser: the form says in plain words what the
promotion will do while it is being filled in (static/js/merchant-promotions.js), under the
page's Content-Security-Policy, and the list says the same once it is saved."""

import re

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, expect

from tests.helpers.browser import LiveServer, screenshot
from tests.helpers.shops import make_shop

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "owner@cafe-sonne.example", "treu-demo-happy-hour"


def test_the_promotion_form_reads_back_what_it_will_do(
    app: FastAPI, live_server: LiveServer, browser: Browser
) -> None:
    make_shop(app, "Café Sonne", owner_email=EMAIL, owner_password=PASSWORD)
    context = browser.new_context(
        base_url=live_server.url, locale="en-GB", viewport={"width": 1280, "height": 900}
    )
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto("/merchant/promotions")
        page.get_by_label("E-mail").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/merchant/promotions$"))

        page.get_by_role("link", name="Happy hour").click()
        preview = page.locator("#promotion-preview")
        expect(preview).to_have_text("Every stamp counts double")
        for day in ("Mon", "Fri", "Sat", "Sun"):
            page.get_by_label(day, exact=True).uncheck()
        expect(preview).to_have_text("Tuesdays to Thursdays, every stamp counts double")
        page.get_by_label("From (time)").fill("14:00")
        page.get_by_label("Until (time)").fill("16:00")
        page.get_by_label("Every stamp counts").select_option("3")
        page.get_by_label("Most extra stamps in total").fill("500")
        sentence = (
            "Tuesdays to Thursdays 14\u201316 h, every stamp counts triple, "
            "at most 500 extra stamps"
        )
        expect(preview).to_have_text(sentence)
        screenshot(page, "merchant-promotion-form-laptop", full_page=True)

        page.get_by_role("button", name="Start the promotion").click()
        expect(page.get_by_role("status")).to_contain_text("The promotion was saved.")
        expect(page.locator(".promotion .summary")).to_have_text(sentence)
        screenshot(page, "merchant-promotions-laptop", full_page=True)
        assert errors == []
    finally:
        context.close()
