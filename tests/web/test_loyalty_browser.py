"""The loyalty mechanics in real Chromium: the till choosing between two programs, offering the
due reward levels largest first and announcing a bonus and a regular's status; the card page
showing the reward ladder, the status and the way to the next one, expiry and an ended program,
and announcing a bonus when a stamp brings one."""

import re
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from babel.dates import format_skeleton
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect
from sqlmodel import Session, col, select

from app.ledger.models import LedgerEntry
from app.loyalty import service as loyalty
from app.merchants.models import Program
from tests.helpers.browser import LiveServer, screenshot
from tests.helpers.clock import Clock
from tests.helpers.loyalty import add_program, add_promotion, add_tier, as_owner, set_levels
from tests.helpers.shops import Shop, new_pairing

pytestmark = pytest.mark.browser

TABLET = {"viewport": {"width": 1024, "height": 768}, "has_touch": True}
STAMP_MS = 3_000  # the card page polls every 1.5 s: a stamp shows within about two


@pytest.fixture
def tablet(browser: Browser, live_server: LiveServer) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=live_server.url, locale="en-GB", **TABLET)
    yield context
    context.close()


def watched(page: Page) -> list[str]:
    """Everything the page reports as wrong: uncaught errors and console errors."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def record(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", record)
    return errors


def new_card(live_server: LiveServer) -> str:
    response = httpx.post(f"{live_server.url}/api/v1/cards")
    assert response.status_code == 201
    token: str = response.json()["token"]
    return token


def stamp(live_server: LiveServer, shop: Shop, token: str, count: int = 1,
          program_id: int | None = None) -> dict[str, Any]:  # fmt: skip
    """A stamp as another till of the shop sends it."""
    response = httpx.post(
        f"{live_server.url}/api/v1/stamps", json={"token": token, "count": count,
                                                  "program_id": program_id},
        headers={**shop.auth, "Idempotency-Key": uuid.uuid4().hex},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def stamp_earlier(clock: Clock, seconds: float, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A stamp given `seconds` ago (so its cooldown is over by now)."""
    clock.advance(-seconds)
    try:
        return stamp(*args, **kwargs)
    finally:
        clock.advance(seconds)


def balances(live_server: LiveServer, shop: Shop, token: str) -> dict[int, int]:
    """The card's stamps per program, as the server holds them."""
    response = httpx.get(f"{live_server.url}/api/v1/till/cards/{token}", headers=shop.auth)
    assert response.status_code == 200, response.text
    return {b["program_id"]: b["stamps"] for b in response.json()["balances"]}


def redemptions(app: FastAPI, shop: Shop) -> list[int]:
    with Session(app.state.engine) as session:
        rows = session.exec(
            select(LedgerEntry.delta).where(
                col(LedgerEntry.merchant_id) == shop.merchant_id,
                col(LedgerEntry.kind) == "redemption",
            )
        ).all()
    return list(rows)


def expiry_day(live_server: LiveServer, token: str, program_id: int) -> date:
    """When the card's stamps in a program expire, as the card's own view says."""
    view = httpx.get(f"{live_server.url}/api/v1/cards/{token}").json()
    found = next(c for c in view["cards"] if c["program"]["id"] == program_id)
    return date.fromisoformat(found["expires_on"])


def archive(app: FastAPI, shop: Shop, program: Program) -> None:
    """The owner ends a program: no more stamps; its rewards stay redeemable."""
    program_id, now = program.id or 0, app.state.clock()
    as_owner(app, shop, lambda s, m: loyalty.archive_program(
        session=s, merchant=m, program_id=program_id, now=now))  # fmt: skip


def shot(page: Page, name: str) -> None:
    screenshot(page, name, animations="disabled")


def open_till(context: BrowserContext, app: FastAPI, shop: Shop) -> tuple[Page, list[str]]:
    page = context.new_page()
    errors = watched(page)
    page.goto(new_pairing(app, shop, "Counter").url)
    expect(page).to_have_url(re.compile(r"/till$"))
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    return page, errors


def scan(page: Page, token: str) -> None:
    """A handheld scanner: the whole code in a burst of keys, then Enter."""
    page.keyboard.type(token)
    page.keyboard.press("Enter")


def program_name(live_server: LiveServer, shop: Shop) -> str:
    info = httpx.get(f"{live_server.url}/api/v1/till", headers=shop.auth).json()
    name: str = next(p["name"] for p in info["programs"] if p["id"] == shop.program_id)
    return name


def test_the_till_stamps_the_program_chosen_and_redeems_an_ended_one(
    tablet: BrowserContext, app: FastAPI, live_server: LiveServer, shop: Shop, clock: Clock
) -> None:
    lunch = add_program(app, shop, "Mittagsmenü", 6, "1 dessert")
    soup = add_program(app, shop, "Suppe", 3, "1 free soup")
    assert lunch.id and soup.id
    coffee = program_name(live_server, shop)
    token = new_card(live_server)
    stamp_earlier(clock, 120, live_server, shop, token, count=3, program_id=soup.id)
    # The owner ends the soup program: no more stamps, but the card's soup is still owed.
    archive(app, shop, soup)
    page, errors = open_till(tablet, app, shop)
    result = page.locator("#till-result-text")

    scan(page, token)
    tabs = page.get_by_role("tab")
    # One large button per program that takes stamps; the ended one has none.
    expect(tabs).to_have_count(2)
    expect(tabs.nth(0)).to_contain_text(coffee)
    expect(tabs.nth(1)).to_contain_text("Mittagsmenü")
    expect(page.get_by_role("tab", name="Suppe")).to_have_count(0)
    expect(page.get_by_role("tab", selected=True)).to_contain_text(coffee)
    # The soup it collected is offered all the same.
    expect(page.locator("#till-due")).to_have_text("Reward due: 1 free soup")
    expect(page.locator("#till-rewards button")).to_have_text(
        ["Redeem: 1 free soup (Suppe, ended)"]
    )

    page.get_by_role("tab", name="Mittagsmenü").click()
    expect(page.get_by_role("tab", selected=True)).to_contain_text("Mittagsmenü")
    expect(page.locator("#till-count-text")).to_have_text("0 of 6 stamps")
    shot(page, "loyalty-till-programs")
    page.keyboard.press("Enter")
    expect(result).to_have_text("Mittagsmenü: +1 stamp, now 1 of 6")
    expect(page.get_by_role("tab", name="Mittagsmenü")).to_contain_text("1/6")
    assert balances(live_server, shop, token) == {shop.program_id: 0, lunch.id: 1, soup.id: 3}
    shot(page, "loyalty-till-stamped-chosen")

    # Back to coffee: the next stamp lands there.
    page.get_by_role("tab", name=coffee).click()
    page.get_by_role("button", name="+2", exact=True).click()
    expect(result).to_have_text(f"{coffee}: +2 stamps, now 2 of 10")
    assert balances(live_server, shop, token) == {shop.program_id: 2, lunch.id: 1, soup.id: 3}

    # The ended program's reward is redeemed from its own button.
    page.get_by_role("button", name="Redeem: 1 free soup (Suppe, ended)").click()
    dialog = page.locator("#till-confirm")
    expect(dialog.get_by_role("heading")).to_have_text("Give 1 free soup?")
    expect(dialog).to_contain_text("This uses 3 stamps of the card.")
    dialog.get_by_role("button", name="Yes, redeem").click()
    expect(result).to_have_text("Suppe: Redeemed: 1 free soup. 0 stamps left.")
    assert balances(live_server, shop, token).get(soup.id, 0) == 0  # left out once empty
    expect(page.locator("#till-rewards button")).to_have_count(0)
    assert not errors


def test_the_till_offers_the_due_levels_largest_first(
    tablet: BrowserContext, app: FastAPI, live_server: LiveServer, shop: Shop, clock: Clock
) -> None:
    set_levels(app, shop, [(4, "small coffee"), (7, "1 croissant")])
    token = new_card(live_server)
    stamp_earlier(clock, 120, live_server, shop, token, count=8)
    page, errors = open_till(tablet, app, shop)
    result = page.locator("#till-result-text")

    scan(page, token)
    expect(page.locator("#till-count-text")).to_have_text("8 of 10 stamps")
    # Two levels are covered, the main reward is not yet: the larger first, the cashier asks.
    expect(page.locator("#till-due")).to_have_text("Rewards due: which one does the customer want?")
    expect(page.locator("#till-rewards button")).to_have_text(
        ["Redeem: 1 croissant (7 stamps)", "Redeem: small coffee (4 stamps)"]
    )
    # The levels are marked on the way to the main reward.
    expect(page.locator("#till-dots li.level")).to_have_count(2)
    shot(page, "loyalty-till-levels-due")

    # Enter still gives a stamp: a reward is never what Enter does.
    page.keyboard.press("Enter")
    expect(result).to_have_text("+1 stamp, now 9 of 10")
    assert redemptions(app, shop) == []
    expect(page.locator("#till-rewards button")).to_have_count(2)

    # The customer takes the croissant: 7 of the 9 stamps go.
    page.get_by_role("button", name="Redeem: 1 croissant (7 stamps)").click()
    dialog = page.locator("#till-confirm")
    expect(dialog.get_by_role("heading")).to_have_text("Give 1 croissant?")
    expect(dialog).to_contain_text("This uses 7 stamps of the card.")
    shot(page, "loyalty-till-confirm-level")
    dialog.get_by_role("button", name="Yes, redeem").click()
    expect(result).to_have_text("Redeemed: 1 croissant. 2 stamps left.")
    assert balances(live_server, shop, token) == {shop.program_id: 2}
    assert redemptions(app, shop) == [-7]
    expect(page.locator("#till-due")).to_be_hidden()
    expect(page.locator("#till-hint")).to_have_text("2 more for small coffee")
    shot(page, "loyalty-till-level-redeemed")

    # Undo says which reward came back.
    page.get_by_role("button", name="Undo redemption").click()
    expect(result).to_have_text(
        "Undone: the redemption of 1 croissant. The card has 9 of 10 stamps."
    )
    assert balances(live_server, shop, token) == {shop.program_id: 9}

    # Ten stamps (a visit later): the main reward heads the list.
    clock.advance(120)
    stamp(live_server, shop, token)
    scan(page, token)
    expect(page.locator("#till-rewards button")).to_have_text(
        ["Redeem: 1 free coffee (10 stamps)", "Redeem: 1 croissant (7 stamps)",
         "Redeem: small coffee (4 stamps)"]
    )  # fmt: skip
    assert not errors


def test_the_till_announces_bonus_and_status(
    tablet: BrowserContext, app: FastAPI, live_server: LiveServer, shop: Shop, clock: Clock
) -> None:
    token = new_card(live_server)
    stamp_earlier(clock, 120, live_server, shop, token, count=3)
    # Regulars from 3 stamps get one more per visit and 10 % off cake; happy hour all day.
    add_tier(app, shop, "Stammgast", 3, bonus_per_visit=1, perk_text="10 % auf Kuchen")
    add_promotion(app, shop, "multiplier", factor=2, title="Happy Hour")
    page, errors = open_till(tablet, app, shop)
    result = page.locator("#till-result-text")
    scan(page, token)
    # The regular's status and what the cashier gives for it, right after the scan.
    expect(page.locator("#till-tier")).to_have_text("Stammgast — 10 % auf Kuchen")
    expect(page.locator("#till-count-text")).to_have_text("3 of 10 stamps")
    page.keyboard.press("Enter")
    expect(result).to_have_text("+1, +1 Happy Hour, +1 Stammgast, now 6 of 10")
    shot(page, "loyalty-till-bonus")
    assert balances(live_server, shop, token) == {shop.program_id: 6}
    # Undo takes the bonuses back with their stamp, and says so.
    undo = page.locator("#till-undo")
    expect(undo).to_have_text("Undo +1, +1 Happy Hour, +1 Stammgast")
    undo.click()
    expect(result).to_have_text(
        "Undone: +1, +1 Happy Hour, +1 Stammgast. The card has 3 of 10 stamps."
    )
    assert balances(live_server, shop, token) == {shop.program_id: 3}

    # The same in German, a visit later.
    clock.advance(120)
    page.goto("/till?lang=de")
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    scan(page, token)
    expect(page.locator("#till-tier")).to_have_text("Stammgast — 10 % auf Kuchen")
    page.get_by_role("button", name="+2", exact=True).click()
    expect(result).to_have_text("+2, +2 Happy Hour, +1 Stammgast, jetzt 8 von 10")
    expect(page.locator("#till-undo")).to_have_text("+2, +2 Happy Hour, +1 Stammgast rückgängig")
    shot(page, "loyalty-till-bonus-de")
    assert not errors


def test_an_offline_stamp_promises_no_bonus_and_learns_it_when_sent(
    tablet: BrowserContext, app: FastAPI, live_server: LiveServer, shop: Shop
) -> None:
    add_promotion(app, shop, "multiplier", factor=2, title="Happy Hour")
    token = new_card(live_server)
    page, errors = open_till(tablet, app, shop)
    result = page.locator("#till-result-text")
    # The till has kept its files for offline use (the camera's decoder among them) before the
    # network drops: a till cut off within its first second is another test's story.
    page.wait_for_function(
        """async () => navigator.serviceWorker && navigator.serviceWorker.controller
            && ("BarcodeDetector" in window
                || !!(await caches.match("/static/vendor/zxing-wasm/reader/zxing_reader.wasm")))"""
    )
    tablet.set_offline(True)
    scan(page, token)
    page.keyboard.press("Enter")
    expect(result).to_have_text("Saved on this till: +1. It is sent when the network is back.")
    expect(page.locator("#till-undo")).to_have_text("Undo +1")
    tablet.set_offline(False)
    expect(page.locator("#till-waiting")).to_be_hidden(timeout=15_000)
    # Sent: the server gave the bonus, and the undo now names it.
    expect(page.locator("#till-undo")).to_have_text("Undo +1, +1 Happy Hour")
    assert balances(live_server, shop, token) == {shop.program_id: 2}
    page.locator("#till-undo").click()
    expect(result).to_have_text("Undone: +1, +1 Happy Hour. The card has 0 of 10 stamps.")
    assert balances(live_server, shop, token) == {shop.program_id: 0}
    # Cut off, the till's requests failed (Chromium logs each): nothing else went wrong.
    assert not [e for e in errors if not e.startswith("Failed to load resource: net::ERR_")]


def test_the_card_page_shows_ladder_status_expiry_and_announces_a_bonus(
    phone: BrowserContext, app: FastAPI, live_server: LiveServer, shop: Shop, clock: Clock
) -> None:
    set_levels(app, shop, [(4, "small coffee"), (7, "1 croissant")])
    lunch = add_program(app, shop, "Mittagsmenü", 6, "1 dessert", expire_months=1)
    soup = add_program(app, shop, "Suppe", 3, "1 free soup")
    assert lunch.id and soup.id
    coffee = program_name(live_server, shop)
    token = new_card(live_server)
    # The card's last visit at the shop was lunch, ten days ago: stamps expire after a month
    # without a visit at the shop (in any program), so lunch's are due in about three weeks.
    stamp_earlier(clock, 12 * 86400, live_server, shop, token, count=5)
    stamp_earlier(clock, 11 * 86400, live_server, shop, token, count=3, program_id=soup.id)
    stamp_earlier(clock, 10 * 86400, live_server, shop, token, count=2, program_id=lunch.id)
    archive(app, shop, soup)
    add_tier(app, shop, "Stammgast", 5, perk_text="10 % auf Kuchen")
    add_tier(app, shop, "Ehrengast", 30)

    page = phone.new_page()
    errors = watched(page)
    page.goto(f"/c/{token}")
    shop_card = page.locator(".shop-card")
    # The shop's status and the way to the next one (10 lifetime stamps so far).
    expect(shop_card.locator(".tier")).to_have_text("Your status here: Stammgast — 10 % auf Kuchen")
    expect(shop_card.locator(".next-tier")).to_have_text("20 more stamps to Ehrengast")
    # One card per program, each named.
    expect(shop_card.locator(".program-name")).to_have_text([coffee, "Mittagsmenü", "Suppe"])
    coffee_card = shop_card.locator(".program").nth(0)
    # The ladder: lower levels and the main reward, where the card stands, what is ready now.
    expect(coffee_card.locator(".ladder li")).to_have_text([
        "4 stamps → small coffee ready now",
        "You are here: 5 stamps",
        "7 stamps → 1 croissant 2 more stamps",
        "10 stamps → 1 free coffee 5 more stamps",
    ])  # fmt: skip
    expect(coffee_card.locator(".ladder li.available")).to_have_count(1)
    # Stamps about to expire (in about three weeks), the day as Babel writes it in British
    # English (the phone asks for en-GB).
    expires = expiry_day(live_server, token, lunch.id)
    assert timedelta(days=17) <= expires - clock().date() <= timedelta(days=22)
    lunch_card = shop_card.locator(".program").nth(1)
    expect(lunch_card.locator(".expiry")).to_have_text(
        f"Your 2 stamps expire on {format_skeleton('yMMMd', expires, locale='en_GB')}"
        " — come by before then"
    )
    expect(coffee_card.locator(".expiry")).to_have_count(0)
    # The ended program, its reward still there.
    soup_card = shop_card.locator(".program").nth(2)
    expect(soup_card.locator(".ended-note")).to_have_text(
        "This program has ended — you can still redeem your reward"
    )
    screenshot(page, "loyalty-card-ladder", full_page=True, animations="disabled")
    # The same day as Babel writes it in German.
    page.goto(f"/c/{token}?lang=de")
    expect(lunch_card.locator(".expiry")).to_have_text(
        f"Deine 2 Stempel verfallen am {format_skeleton('yMMMd', expires, locale='de')}"
        " — komm vorher vorbei"
    )
    page.goto(f"/c/{token}?lang=en")
    expect(shop_card.locator(".tier")).to_have_text("Your status here: Stammgast — 10 % auf Kuchen")

    # A stamp in happy hour: the page announces the stamp and its bonus, once.
    add_promotion(app, shop, "multiplier", factor=2, title="Happy Hour")
    live = page.locator("p[aria-live=polite]")
    stamp(live_server, shop, token)
    expect(live).to_have_text("+1 at Café Sonne, +1 Happy Hour: now 7 of 10", timeout=STAMP_MS)
    expect(page.locator("#toast")).to_have_text("+1 at Café Sonne, +1 Happy Hour: now 7 of 10")
    expect(coffee_card.locator(".bonus")).to_have_text("With your last stamp: +1 Happy Hour")
    expect(coffee_card.locator(".ladder li.available")).to_have_count(2)
    expect(shop_card.locator(".next-tier")).to_have_text("18 more stamps to Ehrengast")
    coffee_card.locator(".bonus").scroll_into_view_if_needed()
    screenshot(page, "loyalty-card-bonus", animations="disabled")
    # The next polls change nothing, so nothing is said again.
    live.evaluate("node => { node.textContent = ''; }")
    page.wait_for_timeout(3_500)
    expect(live).to_have_text("")

    # In German, with the day as Babel writes it.
    page.goto(f"/c/{token}?lang=de")
    expect(shop_card.locator(".tier")).to_have_text("Dein Status hier: Stammgast — 10 % auf Kuchen")
    expect(shop_card.locator(".next-tier")).to_have_text("noch 18 Stempel bis Ehrengast")
    expect(coffee_card.locator(".ladder li").nth(0)).to_have_text(
        "4 Stempel → small coffee jetzt einlösbar"
    )
    # The visit just now keeps the lunch stamps another month: no notice any more.
    expect(lunch_card.locator(".expiry")).to_have_count(0)
    expect(soup_card.locator(".ended-note")).to_have_text(
        "Diese Aktion ist beendet — deine Prämie kannst du noch einlösen"
    )
    screenshot(page, "loyalty-card-de", full_page=True, animations="disabled")
    assert not errors
