"""The card page at the counter, in real Chromium on a phone (390 x 844 and 320 px wide), in
German and English: the shop the card was made at shown at once, the changed card brought into
view, the reward moment (and without motion for those who asked), one announcement per ledger
change in words that match it, the order of the page and the backup folded once done, and dates
and times in the visitor's full locale. Screenshots: test-artifacts/card-polish-*.png."""

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect
from sqlmodel import Session

from app.feedback import service as feedback
from tests.helpers.browser import LiveServer, screenshot
from tests.helpers.clock import Clock
from tests.helpers.loyalty import add_promotion
from tests.helpers.shops import Shop

pytestmark = pytest.mark.browser

STAMP_MS = 3_000  # the page polls every 1.5 s
# (Accept-Language, width): both languages, the common phone and the narrowest one.
PHONES = [pytest.param("en-GB", 390, id="en-390"), pytest.param("de-AT", 320, id="de-320")]
# The phones, and the same page on a tablet (German) and a laptop (English).
SCREENS = [*PHONES, pytest.param("de-AT", 1024, id="de-1024"),
           pytest.param("en-GB", 1280, id="en-1280")]  # fmt: skip
WORDS = {
    "en": {"get": "Get my card", "count": "{s} of {r} stamps", "noted": "I noted it",
           "saved": "saved", "ready": "Reward ready"},
    "de": {"get": "Karte holen", "count": "{s} von {r} Stempeln", "noted": "Hab ich notiert",
           "saved": "gesichert", "ready": "Prämie bereit"},
}  # fmt: skip


def phone_context(
    browser: Browser, live_server: LiveServer, locale: str, width: int, **options: Any
) -> BrowserContext:
    viewport = {"width": width, "height": {320: 640, 390: 844, 1024: 768}.get(width, 860)}
    return browser.new_context(
        base_url=live_server.url, locale=locale, timezone_id="Europe/Vienna", viewport=viewport,
        device_scale_factor=2, is_mobile=True, has_touch=True, **options,
    )  # fmt: skip


@pytest.fixture
def contexts(browser: Browser, live_server: LiveServer) -> Iterator[list[BrowserContext]]:
    """Phones a test opens; closed after it."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def open_phone(
    contexts: list[BrowserContext], browser: Browser, live_server: LiveServer, locale: str,
    width: int, **options: Any,
) -> tuple[Page, list[str]]:  # fmt: skip
    context = phone_context(browser, live_server, locale, width, **options)
    contexts.append(context)
    page = context.new_page()
    errors: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", record)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


def api(live_server: LiveServer, method: str, path: str, shop: Shop | None = None,
        **body: Any) -> Any:  # fmt: skip
    headers = {**shop.auth, "Idempotency-Key": uuid.uuid4().hex} if shop else {}
    answer = httpx.request(method, f"{live_server.url}{path}", headers=headers,
                           json=body or None)  # fmt: skip
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def new_card(live_server: LiveServer) -> str:
    return str(api(live_server, "POST", "/api/v1/cards")["token"])


def stamp(live_server: LiveServer, shop: Shop, token: str, count: int = 1) -> Any:
    return api(live_server, "POST", "/api/v1/stamps", shop, token=token, count=count)


def in_view(page: Page, selector: str) -> bool:
    """The whole element is on the screen (not scrolled off, not below the fold)."""
    return bool(
        page.eval_on_selector(
            selector,
            "el => { const r = el.getBoundingClientRect();"
            " return r.top >= 0 && r.bottom <= window.innerHeight; }",
        )
    )


def words(locale: str) -> dict[str, str]:
    return WORDS[locale[:2]]


# --- 1. the shop the card was made at, at once --------------------------------------------


@pytest.mark.parametrize(("locale", "width"), SCREENS)
def test_a_card_got_at_a_shop_shows_that_shops_empty_card_at_once(
    browser: Browser, live_server: LiveServer, contexts: list[BrowserContext], shop: Shop,
    locale: str, width: int,
) -> None:  # fmt: skip
    page, errors = open_phone(contexts, browser, live_server, locale, width)
    page.goto(f"/m/{shop.slug}")
    page.get_by_role("button", name=words(locale)["get"]).click()
    page.wait_for_url(re.compile(r"/c/[A-Z2-7]+$"))  # the shop went in the fragment, now gone
    cafe = page.locator(f"#m-{shop.slug}")
    expect(cafe.get_by_text(words(locale)["count"].format(s=0, r=10))).to_be_visible()
    expect(cafe.locator(".stamp")).to_have_count(10)
    expect(cafe.locator(".stamp.filled")).to_have_count(0)
    expect(page.locator("#no-stamps")).to_be_hidden()
    # Right under the QR: on the first screen of a 390 x 844 phone, the next thing on a small one.
    expect(page.locator(".shop-card").first).to_have_id(f"m-{shop.slug}")
    if width >= 390:
        assert in_view(page, f"#m-{shop.slug} .stamps"), "the shop's card is below the fold"
    screenshot(page, f"card-polish-new-card-{locale}-{width}", animations="disabled")
    # Nothing new on the server: the card itself has no stamps anywhere.
    token = page.url.rsplit("/", 1)[1]
    assert api(live_server, "GET", f"/api/v1/cards/{token}")["cards"] == []
    # The first stamp replaces the empty card with the real one.
    stamp(live_server, shop, token)
    expect(cafe.get_by_text(words(locale)["count"].format(s=1, r=10))).to_be_visible(
        timeout=STAMP_MS
    )
    expect(page.locator(".shop-card")).to_have_count(1)
    assert not errors, errors


def test_a_poster_scanned_with_a_card_opens_it_with_that_shop_first(
    browser: Browser, live_server: LiveServer, contexts: list[BrowserContext], shop: Shop,
    other_shop: Shop,
) -> None:  # fmt: skip
    page, errors = open_phone(contexts, browser, live_server, "en-GB", 390)
    token = new_card(live_server)
    stamp(live_server, shop, token, count=3)
    page.goto(f"/c/{token}")
    expect(page.locator(".shop-card")).to_have_count(1)
    page.goto(f"/m/{other_shop.slug}")  # already holds a card: straight to it
    page.wait_for_url(re.compile(r"/c/[A-Z2-7]+$"))
    expect(page.locator(".shop-card").first).to_have_id(f"m-{other_shop.slug}")
    expect(page.locator(".shop-card").first).to_contain_text("0 of 5 stamps")
    expect(page.locator(f"#m-{shop.slug}")).to_contain_text("3 of 10 stamps")
    assert not errors, errors


# --- 2. the changed card in view, the reward moment -----------------------------------------


@pytest.mark.parametrize(("locale", "width"), PHONES)
def test_a_stamp_brings_the_changed_card_into_view(
    browser: Browser, live_server: LiveServer, contexts: list[BrowserContext], shop: Shop,
    other_shop: Shop, clock: Clock, locale: str, width: int,
) -> None:  # fmt: skip
    token = new_card(live_server)
    stamp(live_server, other_shop, token, count=2)
    stamp(live_server, shop, token, count=4)
    page, errors = open_phone(contexts, browser, live_server, locale, width)
    page.goto(f"/c/{token}")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # reading further down
    clock.advance(61)  # past the bakery's cooldown
    stamp(live_server, other_shop, token)
    bakery = page.locator(f"#m-{other_shop.slug}")
    expect(bakery.get_by_text(words(locale)["count"].format(s=3, r=5))).to_be_visible(
        timeout=STAMP_MS
    )
    # The shop just visited comes first, and its card is on the screen, whole.
    expect(page.locator(".shop-card").first).to_have_id(f"m-{other_shop.slug}")
    page.wait_for_function(
        f"""() => {{ const r = document.querySelector("#m-{other_shop.slug} .program")
            .getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }}"""
    )
    screenshot(page, f"card-polish-stamp-in-view-{locale}-{width}", animations="disabled")
    assert not errors, errors


@pytest.mark.parametrize("motion", ["no-preference", "reduce"])
def test_the_reward_moment_moves_only_for_those_who_want_motion(
    browser: Browser, live_server: LiveServer, contexts: list[BrowserContext], shop: Shop,
    clock: Clock, motion: str,
) -> None:  # fmt: skip
    token = new_card(live_server)
    stamp(live_server, shop, token, count=9)
    page, errors = open_phone(contexts, browser, live_server, "en-GB", 390, reduced_motion=motion)
    page.goto(f"/c/{token}")
    expect(page.locator(".program.reward-moment")).to_have_count(0)  # nothing new on opening
    clock.advance(61)  # past the program's cooldown
    stamp(live_server, shop, token)
    moment = page.locator(".program.reward-moment")
    expect(moment).to_have_count(1, timeout=STAMP_MS)
    expect(moment.locator(".reward-ready")).to_contain_text("Reward ready — show this at the till")
    glow = moment.evaluate("el => getComputedStyle(el).animationName")
    pop = moment.locator(".reward-ready").evaluate("el => getComputedStyle(el).animationName")
    if motion == "reduce":
        assert (glow, pop) == ("none", "none")
    else:
        assert (glow, pop) == ("reward-glow", "reward-pop")
    assert in_view(page, ".program.reward-moment .reward-ready")
    screenshot(page, f"card-polish-reward-{motion}")
    assert not errors, errors


# --- 3. one announcement per ledger change, in words that match it --------------------------


ANNOUNCED = {
    "en": [
        "+1 at Café Sonne: reward ready!",
        "Reward used at Café Sonne: 1 free coffee. Now 0 of 10",
        "Redemption undone at Café Sonne: your reward is ready again",
        "+1 at Café Sonne, +1 Happy Hour: reward ready!",
        "2 stamps undone at Café Sonne: now 10 of 10",
    ],
    "de": [
        "+1 bei Café Sonne: Prämie bereit!",
        "Prämie bei Café Sonne eingelöst: 1 free coffee. Jetzt 0 von 10",
        "Einlösung bei Café Sonne zurückgenommen: Deine Prämie ist wieder bereit",
        "+1 bei Café Sonne, +1 Happy Hour: Prämie bereit!",
        "2 Stempel bei Café Sonne zurückgenommen: jetzt 10 von 10",
    ],
}


@pytest.mark.parametrize(("locale", "width"), SCREENS)
def test_each_ledger_change_is_announced_in_its_own_words(
    app: FastAPI, browser: Browser, live_server: LiveServer, contexts: list[BrowserContext],
    shop: Shop, clock: Clock, locale: str, width: int,
) -> None:  # fmt: skip
    token = new_card(live_server)
    stamp(live_server, shop, token, count=9)
    page, errors = open_phone(contexts, browser, live_server, locale, width)
    page.goto(f"/c/{token}")
    live = page.locator("p[aria-live=polite]")
    toast = page.locator("#toast")
    said = ANNOUNCED[locale[:2]]
    counts = page.locator(f"#m-{shop.slug} .count")
    clock.advance(61)  # past the program's cooldown

    def told(text: str) -> None:
        expect(live).to_have_text(text, timeout=STAMP_MS)
        expect(toast).to_have_text(text)  # the note on the screen says the same, nothing older

    stamp(live_server, shop, token)
    told(said[0])
    redeemed = api(live_server, "POST", "/api/v1/redemptions", shop, token=token)
    told(said[1])
    expect(counts).to_have_text(words(locale)["count"].format(s=0, r=10))
    screenshot(page, f"card-polish-redeemed-{locale}-{width}", animations="disabled")
    api(live_server, "POST", f"/api/v1/entries/{redeemed['entry_id']}/void", shop)
    told(said[2])
    add_promotion(app, shop, "multiplier", factor=2, title="Happy Hour")
    clock.advance(61)  # past the program's cooldown, on the server's clock
    bonus = stamp(live_server, shop, token)
    told(said[3])
    api(live_server, "POST", f"/api/v1/entries/{bonus['entry_id']}/void", shop)
    told(said[4])
    # The next polls change nothing: nothing is said again.
    live.evaluate("node => { node.textContent = ''; }")
    page.wait_for_timeout(3_200)
    expect(live).to_have_text("")
    assert not errors, errors


# --- 4. the page's order, the backup folded once done, whole code groups ----------------------


@pytest.mark.parametrize(("locale", "width"), PHONES)
def test_the_page_puts_the_counter_first_and_folds_the_backup_once_done(
    browser: Browser, live_server: LiveServer, contexts: list[BrowserContext], shop: Shop,
    other_shop: Shop, clock: Clock, locale: str, width: int,
) -> None:  # fmt: skip
    token = new_card(live_server)
    stamp(live_server, other_shop, token, count=2)
    clock.advance(60)  # the café is the later visit, so its card comes first
    stamp(live_server, shop, token, count=4)
    page, errors = open_phone(contexts, browser, live_server, locale, width)
    page.goto(f"/c/{token}")
    expect(page.locator(".shop-card")).to_have_count(2)
    # QR, then this shop's progress (the latest visit), then the other shop, then the backup.
    order = page.evaluate(
        """() => ["#qr", "#m-cafe-sonne", "#m-backerei-gruber", "#save", ".card-links"]
            .map((s) => document.querySelector(s).getBoundingClientRect().top)"""
    )
    assert order == sorted(order), order
    # The recovery code breaks between its groups of four, never inside one.
    groups = page.locator("#recovery-code .group")
    expect(groups).to_have_count(7)
    lines = groups.evaluate_all("gs => gs.map((g) => g.getClientRects().length)")
    assert lines == [1] * 7, lines
    tops = groups.evaluate_all("gs => new Set(gs.map((g) => g.getBoundingClientRect().top)).size")
    code = page.locator("#recovery-code").inner_text()
    assert re.fullmatch(r"([A-Z2-7]{4}-){6}[A-Z2-7]{2}", code.replace("\n", "")), code
    screenshot(page, f"card-polish-backup-open-{locale}-{width}", full_page=True,
               animations="disabled")  # fmt: skip
    open_height = page.evaluate("document.documentElement.scrollHeight")

    # Done: the section folds to one line, on this phone, also on the next visit.
    page.get_by_role("button", name=words(locale)["noted"]).click()
    expect(page.locator("#save")).not_to_have_attribute("open", "")
    expect(page.locator("#saved-mark")).to_have_text(words(locale)["saved"])
    page.reload()
    expect(page.locator(".shop-card")).to_have_count(2)
    expect(page.locator("#save")).not_to_have_attribute("open", "")
    expect(page.locator("#saved-mark")).to_be_visible()
    folded = page.evaluate("document.documentElement.scrollHeight")
    assert folded < open_height - 500, (folded, open_height)
    if width == 390:
        assert folded < 2_000, folded  # the page was about 5,100 px tall
    screenshot(page, f"card-polish-backup-folded-{locale}-{width}", full_page=True,
               animations="disabled")  # fmt: skip
    # Still one tap away.
    page.locator("#save > summary").click()
    expect(page.locator("#recovery-code")).to_be_visible()
    assert tops >= 1
    assert not errors, errors


# --- 5. dates and times in the full locale ---------------------------------------------------


REPLY_TIMES = {  # 21:49 UTC on 6 December 2025 is 22:49 in Vienna
    "de-AT": "6. Dez. 2025, 22:49",
    "de-DE": "6. Dez. 2025, 22:49",
    "en-GB": "6 Dec 2025, 22:49",
    "en-US": "Dec 6, 2025, 10:49 PM",
}


@pytest.mark.parametrize("locale", list(REPLY_TIMES))
def test_reply_times_have_day_and_time_in_the_visitors_locale(
    app: FastAPI, browser: Browser, live_server: LiveServer, contexts: list[BrowserContext],
    shop: Shop, locale: str,
) -> None:  # fmt: skip
    token = new_card(live_server)
    stamp(live_server, shop, token)
    given = api(live_server, "POST", "/api/v1/feedback", token=token, merchant=shop.slug, rating=4)
    with Session(app.state.engine) as session:
        feedback.reply(
            session=session, merchant_id=shop.merchant_id, feedback_id=given["id"],
            text="Danke!", now=datetime(2025, 12, 6, 21, 49, tzinfo=UTC),
        )  # fmt: skip
        session.commit()
    page, errors = open_phone(contexts, browser, live_server, locale, 390)
    page.goto(f"/c/{token}")
    assert page.evaluate("document.documentElement.lang") == locale
    reply = page.locator(f"#m-{shop.slug} .reply")
    expect(reply).to_contain_text("Danke!")
    shown = reply.locator(".muted").inner_text()
    assert shown.replace("\u202f", " ") == REPLY_TIMES[locale], shown
    reply.scroll_into_view_if_needed()
    screenshot(page, f"card-polish-reply-{locale}", animations="disabled")
    # The feedback page, made on the server, writes it the same way (in the shop's time zone).
    page.goto(f"/c/{token}/feedback/{shop.slug}")
    assert page.evaluate("document.documentElement.lang") == locale
    expect(page.locator("#conversation .reply time")).to_have_text(
        re.compile("[ \u202f]".join(map(re.escape, REPLY_TIMES[locale].split(" "))))
    )
    assert not errors, errors


# --- the same card on a tablet and a laptop ---------------------------------------------------

LARGE = ({"width": 1024, "height": 768}, {"width": 1280, "height": 860})


@pytest.mark.parametrize("locale", ["en-GB", "de-AT"])
def test_on_a_tablet_and_a_laptop_the_card_keeps_its_order_and_fits(
    browser: Browser, live_server: LiveServer, contexts: list[BrowserContext], shop: Shop,
    other_shop: Shop, clock: Clock, locale: str,
) -> None:  # fmt: skip
    token = new_card(live_server)
    stamp(live_server, other_shop, token, count=2)
    clock.advance(60)  # the café is the later visit, so its card comes first
    stamp(live_server, shop, token, count=4)
    page, errors = open_phone(contexts, browser, live_server, locale, 390)
    page.goto(f"/c/{token}")
    expect(page.locator(".shop-card")).to_have_count(2)
    # The latest visit's shop first; each round stamps the other one, which comes first next.
    shops = {"cafe": (shop, "#m-cafe-sonne", 10), "bakery": (other_shop, "#m-backerei-gruber", 5)}
    latest, other, counts = "cafe", "bakery", {"cafe": 4, "bakery": 2}
    for screen in LARGE:
        page.set_viewport_size(screen)
        order = page.evaluate(
            "(ids) => ids.map((s) => document.querySelector(s).getBoundingClientRect().top)",
            ["#qr", shops[latest][1], shops[other][1], "#save"],
        )
        assert order == sorted(order), (screen, order)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), screen
        # A stamp at the other shop: its card is brought into view, here too.
        clock.advance(61)
        stamp(live_server, shops[other][0], token)
        counts[other] += 1
        card = shops[other][1]
        expect(page.locator(card)).to_contain_text(
            words(locale)["count"].format(s=counts[other], r=shops[other][2]), timeout=STAMP_MS
        )
        page.wait_for_function(
            """(card) => { const r = document.querySelector(card).getBoundingClientRect();
                return r.top >= 0 && r.top < window.innerHeight; }""",
            arg=card,
        )
        screenshot(page, f"card-polish-{locale}-{screen['width']}", animations="disabled")
        latest, other = other, latest
        page.reload()
        expect(page.locator(".shop-card")).to_have_count(2)
    assert not errors, errors
