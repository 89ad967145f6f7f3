"""The dashboard's retention panels in a real browser, in English and German: retention and
churn with the quarter-over-quarter table, the owner's numbers (purchase cycle, average ticket,
reward value) and the estimates they give; and a new shop's first screen.
"""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app import demo
from app.config import Settings
from tests.helpers.browser import screenshot
from tests.helpers.shops import Shop

pytestmark = pytest.mark.browser

PERCENT = re.compile(r"^\d[\d.,]*\s?%$")


@pytest.fixture
def demo_data(settings: Settings) -> Iterator[dict[str, Any]]:
    yield demo.seed(settings, cards=300, months=5, visits=4000, seed=7, if_empty=False)


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/merchant/login?lang=en")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/merchant/dashboard$"))


def test_retention_panels_and_the_owners_numbers(
    page: Page, demo_data: dict[str, Any], live_server: Any
) -> None:
    cafe = demo_data["merchants"][0]
    log_in(page, cafe["owner_email"], cafe["owner_password"])
    for name in ("Retention rate", "Churn rate"):
        tile = page.locator(
            ".tile", has=page.locator(".tile-label", has_text=re.compile(f"^{name}$"))
        )
        expect(tile.locator(".tile-value")).to_have_text(PERCENT)
    panel = page.locator("#retention")
    expect(panel.get_by_role("heading", name="Retention and churn")).to_be_visible()
    expect(panel).to_contain_text(re.compile(r"Your purchase cycle is \d+ days"))
    expect(panel.locator("table.retention-table tbody tr")).to_have_count(6)
    # Five months of history: two or three quarters, the last one so far.
    expect(page.locator("table.quarter-table tbody tr").last).to_contain_text("(to ")
    assert 2 <= page.locator("table.quarter-table tbody tr").count() <= 3
    # No average ticket yet: no lifetime value, and the page says how to get one.
    expect(page.locator(".tile-label", has_text="Lifetime value (estimate)")).to_have_count(0)
    expect(page.locator("#money")).to_contain_text("Enter an average ticket below")

    form = page.locator("#numbers form")
    form.get_by_label("Purchase cycle in days").fill("21")
    form.get_by_label("Average ticket (€)").first.fill("3,50")
    form.get_by_label("Reward value (€)").first.fill("3")
    form.get_by_role("button", name="Save").click()
    expect(page.locator(".notice", has_text="Your numbers were saved.")).to_be_visible()
    # The segments follow the cycle: active for two cycles, lapsed after four.
    expect(page.locator("table.segments tbody tr").first).to_contain_text("the last 42 days")
    expect(page.locator("table.segments")).to_contain_text("more than 84 days ago")
    expect(page.locator("#retention")).to_contain_text("Your purchase cycle is 21 days")
    # The estimates: the lifetime value is there (hidden with the churn rate when a group
    # behind that is smaller than k), the net effect in euros.
    tile_of = "#money .tile:has(.tile-label:text-is('{}')) .tile-value"
    expect(page.locator(".tile-label", has_text="Lifetime value (estimate)")).to_have_count(1)
    expect(page.locator(tile_of.format("Net effect of the program"))).to_have_text(re.compile("€"))
    expect(page.locator(tile_of.format("Visits per card per year"))).to_have_text(
        re.compile(r"^\d[\d,.]*$")
    )
    money = page.locator("#money")
    expect(money).to_contain_text("Estimates from the average ticket you entered (€3.50)")
    expect(form.get_by_label("Average ticket (€)").first).to_have_value("3.50")
    page.locator("#retention").scroll_into_view_if_needed()
    screenshot(page, "dashboard-retention")

    page.get_by_role("link", name="DE", exact=True).click()
    expect(page.get_by_role("heading", name="Bindung und Abwanderung")).to_be_visible()
    expect(page.locator("#retention")).to_contain_text("Ihr Kaufzyklus beträgt 21 Tage")
    expect(page.locator(".tile-label", has_text="Kundenwert (Schätzung)")).to_have_count(1)
    expect(page.locator(".cohort-table thead")).to_contain_text("kam im Monat 1 wieder")
    expect(page.get_by_role("heading", name="Quartal für Quartal")).to_be_visible()
    expect(page.locator("#numbers form").get_by_label("Durchschnittsbon (€)").first).to_have_value(
        "3,50"
    )
    screenshot(page, "dashboard-retention-de", full_page=True)


def test_a_new_shop_starts_with_next_steps(page: Page, shop: Shop, live_server: Any) -> None:
    log_in(page, shop.owner_email, shop.owner_password)
    start = page.locator("#getting-started")
    expect(start.get_by_role("heading", name="Getting started")).to_be_visible()
    # Suppression explained once, instead of a wall of hidden figures.
    expect(page.locator(".privacy-note")).to_have_count(1)
    expect(start).to_contain_text("Cards so far: 0. Stamps on the last day: 0.")
    for name, href in (
        ("Print the counter poster", "/merchant/print"),
        ("Pair a till", "/merchant/devices"),
        ("Set up a promotion", "/merchant/promotions"),
    ):
        expect(start.get_by_role("link", name=name)).to_have_attribute("href", href)
    # Every figure is still there, folded away.
    everything = page.locator("details.all-figures")
    expect(everything.locator("#glance-h")).not_to_be_visible()
    everything.get_by_text("All figures of the period").click()
    expect(everything.locator("#glance-h")).to_be_visible()
    screenshot(page, "dashboard-new-shop")
    page.get_by_role("link", name="DE", exact=True).click()
    expect(page.get_by_role("heading", name="Erste Schritte")).to_be_visible()
    expect(page.get_by_role("link", name="Eine Kasse verbinden")).to_be_visible()
