"""The operator's imprint and privacy notice in real Chromium, in German and English: filled
from settings (and saying so plainly when they are not), linked from the footer of a customer
page, the merchant area and the till's pairing page, and fitting a 320 px phone, a 390 px
phone, a tablet and a 1280 px desktop. Screenshots: test-artifacts/legal-*.png."""

import re

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from app.config import Settings
from tests.helpers.browser import screenshot

pytestmark = pytest.mark.browser

OPERATOR = {
    "operator_name": "Sonne Gastro GmbH",
    "operator_address": "Hauptstraße 1; 1010 Wien",
    "operator_email": "kontakt@sonne.example",
    "operator_vat_id": "ATU12345678",
}
WORDS = {
    "en": {"imprint": "Imprint", "privacy": "Privacy notice", "vat": "VAT ID",
           "stored": "a pseudonym of your card that is different at every shop",
           "not_stored": "No IP address and no browser details (user agent)",
           "unset": "The operator of this site has not filled in this page yet."},
    "de": {"imprint": "Impressum", "privacy": "Datenschutzerklärung", "vat": "UID-Nummer",
           "stored": "ein Pseudonym Ihrer Karte, das in jedem Geschäft ein anderes ist",
           "not_stored": "Keine IP-Adresse und keine Browser-Angaben (User-Agent)",
           "unset": "Der Betreiber dieser Seite hat diese Angaben noch nicht ausgefüllt."},
}  # fmt: skip


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return settings.model_copy(update=getattr(request, "param", OPERATOR))


def fits(page: Page) -> None:
    for width in (390, 320, 1024, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0, f"{page.url} overflows by {overflow}px at {width}px"


@pytest.mark.parametrize("lang", ["en", "de"])
def test_the_imprint_and_privacy_notice_name_the_operator_and_what_is_stored(
    page: Page, lang: str
) -> None:
    words = WORDS[lang]
    page.goto(f"/imprint?lang={lang}")
    expect(page.get_by_role("heading", level=1)).to_have_text(words["imprint"])
    expect(page.locator(".operator-name")).to_have_text("Sonne Gastro GmbH")
    expect(page.locator(".operator-address")).to_contain_text("1010 Wien")
    expect(page.get_by_role("link", name="kontakt@sonne.example")).to_be_visible()
    expect(page.locator("dt", has_text=words["vat"])).to_be_visible()
    expect(page.locator("#operator-unset")).to_have_count(0)
    fits(page)
    screenshot(page, f"legal-imprint-{lang}", full_page=True)

    page.goto(f"/privacy?lang={lang}")
    expect(page.get_by_role("heading", level=1)).to_have_text(words["privacy"])
    expect(page.locator(".operator-name")).to_have_text("Sonne Gastro GmbH")
    expect(page.locator("#privacy-stored")).to_contain_text(words["stored"])
    expect(page.locator("#privacy-not-stored")).to_contain_text(words["not_stored"])
    expect(page.locator("#privacy-stored")).not_to_contain_text("IP")
    fits(page)
    page.set_viewport_size({"width": 320, "height": 800})
    screenshot(page, f"legal-privacy-{lang}-320", full_page=True)


@pytest.mark.parametrize("settings", [{}], indirect=True, ids=["unset"])
def test_without_an_operator_both_pages_say_so(page: Page) -> None:
    for lang in ("en", "de"):
        for path in ("/imprint", "/privacy"):
            page.goto(f"{path}?lang={lang}")
            expect(page.locator("#operator-unset")).to_contain_text(WORDS[lang]["unset"])
            expect(page.locator("#operator-unset")).to_contain_text("TREU_OPERATOR_NAME")
            expect(page.locator(".operator-name")).to_have_count(0)
    screenshot(page, "legal-privacy-unset-de", full_page=True)


@pytest.mark.parametrize("lang", ["en", "de"])
def test_every_kind_of_page_links_to_both_in_its_footer(
    phone: BrowserContext, page: Page, lang: str
) -> None:
    words = WORDS[lang]
    for path in ("/", "/merchant/login", "/till/pair"):
        page.goto(f"{path}?lang={lang}")
        footer = page.locator("footer")
        expect(footer.get_by_role("link", name=words["imprint"])).to_have_attribute(
            "href", "/imprint"
        )
        expect(footer.get_by_role("link", name=words["privacy"])).to_have_attribute(
            "href", "/privacy"
        )
        fits(page)
    screenshot(page, f"legal-footer-till-pair-{lang}")
    page.goto(f"/?lang={lang}")
    page.locator("footer").get_by_role("link", name=words["privacy"]).click()
    expect(page).to_have_url(re.compile(r"/privacy$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(words["privacy"])
