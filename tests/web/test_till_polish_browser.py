"""The till at the counter, polished, in real Chromium with a camera, in German and English, on
a desktop (1280 px), a tablet (1024 x 768) and a phone (390 and 320 px wide, one page
resized): a due reward is the first and largest choice but never what Enter does, +N only up
to one reward's worth, the camera caption off the preview, the result next to the buttons,
times and the sound toggle in words, an <h1>, and the card's short code at this shop, the same
as its phone shows. And on the database: that code is stable at one shop and differs between
two. Screenshots: test-artifacts/till-polish-*.png."""

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Locator, Page, Playwright, expect

from tests.helpers.api import new_card, stamp
from tests.helpers.browser import LiveServer, launch_chromium, screenshot
from tests.helpers.shops import make_shop, new_pairing

SIZES = [(1280, 860), (1024, 768), (390, 844), (320, 640)]
NEAR_PX = 40  # the result banner sits at most this far below the last button
WORDS = {
    "en-GB": {"label": "Counter", "count": "{s} of {r} stamps", "redeem": "Redeem: 1 free bun",
              "due": "Reward due: 1 free bun", "stamped": "+1 stamp, now 4 of 3",
              "sound_off": "Sound: off", "sound_on": "Sound: on", "just_now": "just now",
              "card": "Card …{code}"},
    "de-AT": {"label": "Theke", "count": "{s} von {r} Stempeln", "redeem": "Einlösen: 1 free bun",
              "due": "Prämie fällig: 1 free bun", "stamped": "+1 Stempel, jetzt 4 von 3",
              "sound_off": "Ton: aus", "sound_on": "Ton: an", "just_now": "gerade eben",
              "card": "Karte …{code}"},
}  # fmt: skip


@pytest.fixture
def camera_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium with a fake camera (a moving test pattern, no QR code in it)."""
    chromium = launch_chromium(
        playwright, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"
    )
    yield chromium
    chromium.close()


def box(locator: Locator) -> dict[str, float]:
    found = locator.bounding_box()
    assert found is not None, f"{locator} is not shown"
    return found


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def seeded(live_server: LiveServer, auth: dict[str, str], stamps: int) -> str:
    token: str = httpx.post(f"{live_server.url}/api/v1/cards").json()["token"]
    httpx.post(
        f"{live_server.url}/api/v1/stamps", json={"token": token, "count": stamps},
        headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
    ).raise_for_status()  # fmt: skip
    return token


def check_layout(page: Page, words: dict[str, str], name: str) -> None:
    """At this size: the caption is off the preview, the due reward comes first and largest,
    and the result sits right under the buttons."""
    expect(page.locator("#till-camera")).to_have_attribute("data-state", "camera_on")
    caption, video = box(page.locator("#till-camera-msg")), box(page.locator("#till-video"))
    assert not overlaps(caption, video), (caption, video)
    buttons = page.locator(".till-actions button:visible")
    first = buttons.first
    expect(first).to_have_text(words["redeem"])
    sizes = [
        b["width"] * b["height"] for b in (box(buttons.nth(i)) for i in range(buttons.count()))
    ]
    assert sizes[0] == max(sizes) and sizes.count(sizes[0]) == 1, sizes
    last, banner = box(buttons.last), box(page.locator("#till-result"))
    gap = banner["y"] - (last["y"] + last["height"])
    assert 0 <= gap <= NEAR_PX, gap
    # Nothing sticks out past the screen's right edge (named, so a failure says what).
    wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
      .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5 && e.checkVisibility())
      .map(e => `${e.tagName}#${e.id}.${e.className}`)""")
    assert not wide, wide
    screenshot(page, f"till-polish-{name}", animations="disabled", full_page=True)


@pytest.mark.browser
@pytest.mark.parametrize("locale", ["en-GB", "de-AT"])
def test_the_till_at_the_counter(
    camera_browser: Browser, app: FastAPI, live_server: LiveServer, locale: str
) -> None:
    words = WORDS[locale]
    lang = locale[:2]
    shop = make_shop(app, "Bäckerei Mohn", stamps_required=3, reward="1 free bun",
                     cooldown_seconds=0)  # fmt: skip
    context = camera_browser.new_context(
        base_url=live_server.url, locale=locale, viewport={"width": 1024, "height": 768},
        has_touch=True,
    )  # fmt: skip
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(new_pairing(app, shop, words["label"]).url)
        expect(page).to_have_url(re.compile(r"/till$"))
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
        # The working till has its heading: the shop and this till.
        heading = page.get_by_role("heading", level=1)
        expect(heading).to_have_count(1)
        expect(heading).to_have_text(f"Bäckerei Mohn · {words['label']}")

        # The sound toggle says its state, and aria-pressed says the same.
        sound = page.locator("#till-sound")
        expect(sound).to_have_text(words["sound_off"], use_inner_text=True)
        expect(sound).to_have_attribute("aria-pressed", "false")
        sound.click()
        expect(sound).to_have_text(words["sound_on"], use_inner_text=True)
        expect(sound).to_have_attribute("aria-pressed", "true")
        sound.click()
        expect(sound).to_have_attribute("aria-pressed", "false")
        page.locator("body").click(position={"x": 5, "y": 300})  # the focus off the toggle

        # A card with its reward due, scanned by a handheld scanner.
        token = seeded(live_server, shop.auth, 3)
        page.keyboard.type(token)
        page.keyboard.press("Enter")
        expect(page.locator("#till-count-text")).to_have_text(words["count"].format(s=3, r=3))
        expect(page.locator("#till-due")).to_have_text(words["due"])
        # +N only up to one reward's worth on a 3-stamp card.
        expect(page.locator("#till-plusn button")).to_have_text(["+2", "+3"])
        # The card's short code at this shop, as the server derives it.
        code = httpx.get(f"{live_server.url}/api/v1/till/cards/{token}", headers=shop.auth)
        shown = words["card"].format(code=code.json()["code"])
        assert re.fullmatch(r"[A-Z2-7]{4}", code.json()["code"])
        expect(page.locator("#till-card-code")).to_have_text(shown)

        # Enter stamps; it never redeems: no question, the reward stays due.
        assert page.evaluate("document.activeElement.classList.contains('till-redeem')") is False
        page.keyboard.press("Enter")
        expect(page.locator("#till-result-text")).to_have_text(words["stamped"])
        expect(page.locator("#till-result-card")).to_have_text(shown)
        expect(page.locator("#till-confirm")).to_be_hidden()
        expect(page.locator("#till-due")).to_have_text(words["due"])
        expect(page.locator("#till-last-when")).to_have_text(words["just_now"])
        answer = httpx.get(f"{live_server.url}/api/v1/till/cards/{token}", headers=shop.auth)
        assert answer.json()["balances"][0]["stamps"] == 4

        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            check_layout(page, words, f"{lang}-{width}")
        assert not errors

        # The customer's phone shows the same code beside this shop's card.
        phone = context.browser
        assert phone is not None
        customer = phone.new_context(
            base_url=live_server.url, locale=locale, viewport={"width": 390, "height": 844},
            is_mobile=True, has_touch=True,
        )  # fmt: skip
        try:
            card_page = customer.new_page()
            card_page.goto(f"/c/{token}")
            expect(card_page.locator(f"#m-{shop.slug} .shop-code")).to_have_text(shown)
            screenshot(card_page, f"till-polish-card-{lang}")
        finally:
            customer.close()
    finally:
        context.close()


def test_a_cards_short_code_is_stable_at_one_shop_and_differs_between_shops(
    app: FastAPI, client: TestClient
) -> None:
    first, second = make_shop(app, "Café Sonne"), make_shop(app, "Bäckerei Mohn")
    token = new_card(client)
    codes: dict[int, Any] = {}
    for shop in (first, second):
        stamp(client, shop, token)
        seen = {
            client.get(f"/api/v1/till/cards/{token}", headers=shop.auth).json()["code"]
            for _ in range(2)
        }
        assert len(seen) == 1
        codes[shop.merchant_id] = seen.pop()
        assert re.fullmatch(r"[A-Z2-7]{4}", codes[shop.merchant_id])
    assert codes[first.merchant_id] != codes[second.merchant_id]
    # The card page shows each shop's own code, the same as that shop's till.
    view = client.get(f"/api/v1/cards/{token}").json()
    assert {c["merchant"]["slug"]: c["code"] for c in view["cards"]} == {
        first.slug: codes[first.merchant_id],
        second.slug: codes[second.merchant_id],
    }
    # Another card has another code at the same shop.
    other = new_card(client)
    stamp(client, first, other)
    answer = client.get(f"/api/v1/till/cards/{other}", headers=first.auth).json()
    assert answer["code"] != codes[first.merchant_id]
