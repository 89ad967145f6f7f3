"""The merchant dashboard: an owner logs in and reads months of demo history as charts.

One real-browser story on demo data (kept as test-artifacts/dashboard*.png), plus HTTP checks:
the page is only the owner's, hides small groups, survives a bad period and speaks German.
"""

import re
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy import func
from sqlmodel import col, select

from app import demo
from app.config import Settings
from app.ledger.models import LedgerEntry
from app.merchants.models import Merchant
from tests.helpers.api import new_card, stamp
from tests.helpers.browser import screenshot
from tests.helpers.pages import HTML, log_in
from tests.helpers.shops import Shop


@pytest.fixture
def demo_data(settings: Settings) -> Iterator[dict[str, Any]]:
    yield demo.seed(settings, cards=300, months=5, visits=4000, seed=7, if_empty=False)


def _first_visit_months(app: FastAPI, merchant: dict[str, Any]) -> int:
    """The months (in the shop's time zone) of its cards' first visits, read off the ledger."""
    first = func.min(LedgerEntry.created_at)
    query = (
        select(first)
        .join(Merchant, col(Merchant.id) == LedgerEntry.merchant_id)
        .where(Merchant.slug == merchant["slug"])
        .group_by(col(LedgerEntry.holder))
    )
    with app.state.engine.connect() as conn:
        firsts = conn.execute(query).scalars().all()
    return len({t.replace(tzinfo=UTC).astimezone(demo.ZONE).strftime("%Y-%m") for t in firsts})


@pytest.mark.browser
def test_owner_reads_the_demo_history_as_charts(
    page: Page, demo_data: dict[str, Any], live_server: Any, app: FastAPI
) -> None:
    cafe = demo_data["merchants"][0]
    page.goto("/merchant/login")
    page.get_by_label("E-mail").fill(cafe["owner_email"])
    page.get_by_label("Password").fill(cafe["owner_password"])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/merchant/dashboard$"))
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    tile = page.locator(".tile", has_text="Active cards (30 days)")
    expect(tile.locator(".tile-value")).to_have_text(re.compile(r"^\d[\d,]*$"))
    # Every chart is an accessible image with a title; the numbers are there as tables too.
    for title in ("Visits", "New cards", "Retention by cohort", "Visits by weekday"):
        expect(page.locator("svg.chart title", has_text=re.compile(f"^{title}$"))).to_have_count(1)
    expect(page.locator("svg.chart")).to_have_count(6)
    # Trend, cohorts and busy hours fold their tables away; the segments' table is beside them.
    expect(page.locator("details summary", has_text="The numbers as a table")).to_have_count(3)
    segments = page.locator("table.segments tbody tr")
    expect(segments).to_have_count(5)
    # The segments follow the café's purchase cycle (two cycles: active).
    expect(segments.first).to_contain_text(re.compile(r"First visit in the last \d+ days\."))
    screenshot(page, "dashboard", full_page=True)
    page.locator("#trend-h").scroll_into_view_if_needed()
    screenshot(page, "dashboard-trend")

    page.get_by_role("link", name="Last 12 months").click()
    expect(page).to_have_url(re.compile(r"period=12m"))
    # Five months of history: the months before it are drawn empty, the cohorts fill in, one
    # row per month in which cards came for the first time (this month has none yet if the
    # test runs on the first morning of a month).
    expect(page.locator(".cohort-table tbody tr")).to_have_count(_first_visit_months(app, cafe))
    page.get_by_role("link", name="DE", exact=True).click()
    expect(page.get_by_role("heading", name="Auf einen Blick")).to_be_visible()
    expect(page.locator("svg.chart title", has_text="Bindung nach Kohorte")).to_have_count(1)
    screenshot(page, "dashboard-de", full_page=True)


def test_the_page_is_the_owners_and_hides_small_groups(
    app: FastAPI, client: TestClient, shop: Shop, other_shop: Shop
) -> None:
    # 3 cards at the café, 14 at the bakery.
    tokens = [new_card(client) for _ in range(17)]
    for token in tokens[:3]:
        assert stamp(client, shop, token).status_code == 201
    for token in tokens[3:]:
        assert stamp(client, other_shop, token).status_code == 201
    log_in(client, shop.owner_email, shop.owner_password)
    page = client.get("/merchant/dashboard", headers=HTML)
    assert page.status_code == 200
    glance = re.search(r"Active cards \(30 days\).*?tile-value\">(.*?)</p>", page.text, re.S)
    assert glance and "fewer than 10 cards" in glance.group(1)
    assert "14" not in re.sub(r"<[^>]+>", " ", glance.group(0))
    with TestClient(app) as other_browser:
        log_in(other_browser, other_shop.owner_email, other_shop.owner_password)
        bakery = other_browser.get("/merchant/dashboard", headers=HTML).text
    glance = re.search(r"Active cards \(30 days\).*?tile-value\">(.*?)</p>", bakery, re.S)
    assert glance and glance.group(1).strip() == "14"
    assert "Café Sonne" not in bakery


def test_a_bad_period_gets_a_friendly_page(client: TestClient, shop: Shop) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    for query in ("period=custom&start=2026-12-01&end=2026-01-01", "period=forever",
                  "period=custom&start=garbage"):  # fmt: skip
        response = client.get(f"/merchant/dashboard?{query}", headers=HTML)
        assert response.status_code == 200, query
        assert "That period cannot be shown" in response.text
        assert "Last 30 days" in response.text


def test_german_dashboard(client: TestClient, shop: Shop) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    page = client.get("/merchant/dashboard?lang=de", headers=HTML).text
    for words in ("Auf einen Blick", "Aktive Karten (30 Tage)", "Kundenlebenszyklus",
                  "Erster Besuch in den letzten 30 Tagen.", "Bindung nach Kohorte"):  # fmt: skip
        assert words in page
