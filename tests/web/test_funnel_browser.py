"""The way in and "did the promotion work?" on the owner's dashboard, in a real browser, in
English and German: the funnel's month with its cards, the sources, a budget's use and a
hold-out promotion too small to tell yet. Screenshots go to test-artifacts/."""

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import BrowserContext, Page, expect

from tests.helpers.api import new_card, stamp
from tests.helpers.browser import LiveServer, screenshot
from tests.helpers.loyalty import add_promotion
from tests.helpers.shops import make_shop

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "owner@trichter.example", "treu-trichter-2026"


def log_in(page: Page) -> None:
    page.goto("/merchant/dashboard")
    expect(page).to_have_url(re.compile(r"/merchant/login\?next="))
    page.get_by_label("E-mail").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/merchant/dashboard$"))


def test_the_way_in_and_the_promotions_effect_in_both_languages(
    app: FastAPI, live_server: LiveServer, phone: BrowserContext
) -> None:
    shop = make_shop(app, "Café Trichter", owner_email=EMAIL, owner_password=PASSWORD,
                     cooldown_seconds=0)  # fmt: skip
    add_promotion(app, shop, "campaign", title="Herbstprobe", stamps=1, holdout_percent=50)
    add_promotion(app, shop, "welcome", title="Willkommen", stamps=1, budget=100)
    with TestClient(app) as api:
        for _ in range(12):
            made = api.post(f"/cards/new?shop={shop.slug}", follow_redirects=False)
            token = made.headers["location"].removeprefix("/c/").split("#")[0]
            assert stamp(api, shop, token).status_code == 201
        assert stamp(api, shop, new_card(api)).status_code == 201
    page = phone.new_page()
    log_in(page)

    funnel = page.locator("#funnel")
    expect(funnel.get_by_role("heading", name="The way in")).to_be_visible()
    expect(funnel.locator("tbody tr").last.locator("td").first).to_have_text("13")
    expect(funnel.locator('[data-source="poster"] .tile-value')).to_have_text("12")
    effect = page.locator("#promotion-effect")
    expect(effect.get_by_role("heading", name="Did the promotion work?")).to_be_visible()
    trial = effect.locator("article", has_text="Herbstprobe")
    expect(trial.locator(".too-small")).to_contain_text("Too small to tell.")
    welcome = effect.locator("article", has_text="Willkommen")
    expect(welcome).to_contain_text("13 bonus stamps given of a budget of 100 (13% used).")
    expect(welcome).to_contain_text("holds no cards out")
    funnel.scroll_into_view_if_needed()
    screenshot(page, "dashboard-funnel-en")

    page.goto("/merchant/dashboard?lang=de")
    expect(funnel.get_by_role("heading", name="Der Weg zur Stammkundschaft")).to_be_visible()
    expect(funnel.locator('[data-source="poster"] .tile-label')).to_have_text(
        "Über Ihr Plakat erstellt"
    )
    expect(effect.get_by_role("heading", name="Hat die Aktion gewirkt?")).to_be_visible()
    expect(trial.locator(".too-small")).to_contain_text("Noch zu wenige, um es zu sagen.")
    expect(welcome).to_contain_text("13 Bonusstempel vergeben von einem Budget von 100")
    effect.scroll_into_view_if_needed()
    screenshot(page, "dashboard-promotion-effect-de")
