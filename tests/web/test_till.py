"""The till in real Chromium on a tablet-sized screen: pairing, scanning by handheld scanner and
by camera, stamping, redeeming, undoing, working through a network cut, and being revoked."""

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import qrcode
from fastapi import FastAPI
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect
from sqlmodel import Session, col, func, select

from app.ledger.models import LedgerEntry
from app.merchants import service as merchants
from app.merchants.models import Merchant
from app.tokens.qr import card_qr_text
from tests.helpers.browser import LiveServer, launch_chromium, screenshot
from tests.helpers.shops import Shop, make_shop, new_pairing

pytestmark = pytest.mark.browser

TABLET = {"viewport": {"width": 1024, "height": 768}, "has_touch": True}


@pytest.fixture
def cafe(app: FastAPI) -> Shop:
    return make_shop(app, "Café Sonne", stamps_required=5, reward="1 free coffee")


@pytest.fixture
def tablet(browser: Browser, live_server: LiveServer) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=live_server.url, locale="en-GB", **TABLET)
    yield context
    context.close()


def new_card(live_server: LiveServer) -> str:
    response = httpx.post(f"{live_server.url}/api/v1/cards")
    assert response.status_code == 201
    token: str = response.json()["token"]
    return token


def stamps_at(live_server: LiveServer, shop: Shop, token: str) -> int:
    """What the server holds for this card at the shop (asked as another till would)."""
    response = httpx.get(f"{live_server.url}/api/v1/till/cards/{token}", headers=shop.auth)
    assert response.status_code == 200, response.text
    stamps: int = response.json()["balances"][0]["stamps"]
    return stamps


def stamp_entries(app: FastAPI, shop: Shop) -> list[tuple[str, int]]:
    with Session(app.state.engine) as session:
        rows = session.exec(
            select(LedgerEntry.holder, LedgerEntry.delta).where(
                LedgerEntry.merchant_id == shop.merchant_id, LedgerEntry.kind == "stamp"
            )
        ).all()
    return [(h, d) for h, d in rows]


def scanner_types(page: Page, text: str, delay: float = 0) -> None:
    """A handheld scanner: the whole code in a burst of keys, then Enter, nothing focused.

    delay=5 makes Playwright type about one key per 20 ms, like a typical USB scanner; the
    default types as fast as the fastest ones (and keeps the test quick).
    """
    page.keyboard.type(text, delay=delay)
    page.keyboard.press("Enter")


def shot(page: Page, name: str) -> None:
    screenshot(page, name, animations="disabled")


def pair(page: Page, app: FastAPI, shop: Shop, label: str) -> None:
    page.goto(new_pairing(app, shop, label).url)
    expect(page).to_have_url(re.compile(r"/till$"))
    expect(page.locator("#till-where")).to_have_text(f"Café Sonne · {label}")


def test_a_day_at_the_till(
    tablet: BrowserContext, app: FastAPI, live_server: LiveServer, cafe: Shop
) -> None:
    page = tablet.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # The strict CSP holds: no inline script or style anywhere on the till.
    page.on("console", lambda m: errors.append(m.text) if "Security Policy" in m.text else None)
    result = page.locator("#till-result-text")
    banner = page.locator("#till-result")
    count = page.locator("#till-count-text")
    waiting = page.locator("#till-waiting")

    # Not paired yet: the page explains how, it is no error.
    page.goto("/till")
    expect(page.get_by_role("heading", name="This browser is not a till yet")).to_be_visible()
    shot(page, "till-unpaired")

    # Pairing: the owner's link opens on the tablet, once.
    url = new_pairing(app, cafe, "Counter").url
    page.goto(url)
    expect(page).to_have_url(re.compile(r"/till$"))
    expect(page.locator("#till-where")).to_have_text("Café Sonne · Counter")
    expect(page.locator("#till-net")).to_have_text("Online")
    # This browser has no camera: it says so, and the other ways in stay.
    expect(page.locator("#till-camera-msg")).to_have_text(re.compile("No camera found"))
    expect(page.get_by_text("Scan a card")).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    shot(page, "till-idle")

    # A handheld scanner types the card URL: the card shows at once, Enter gives the stamp.
    ada = new_card(live_server)
    scanner_types(page, f"{live_server.url}/c/{ada}")
    expect(count).to_have_text("0 of 5 stamps")
    expect(page.locator("#till-hint")).to_have_text("5 more for 1 free coffee")
    shot(page, "till-card")
    page.keyboard.press("Enter")
    expect(result).to_have_text("+1 stamp, now 1 of 5")
    expect(banner).to_have_class(re.compile(r"\bok\b"))
    expect(count).to_have_text("1 of 5 stamps")
    assert stamps_at(live_server, cafe, ada) == 1
    shot(page, "till-stamped")

    # The same card again right away: the till warns, and the server refuses in plain words.
    scanner_types(page, f"{live_server.url}/c/{ada}")
    expect(page.locator("#till-hint")).to_have_text(re.compile(r"^Already stamped \d+ seconds ago"))
    page.get_by_role("button", name="+1 stamp").click()
    expect(result).to_have_text(re.compile(r"^Already stamped \d+ seconds ago\. Try again in"))
    expect(banner).to_have_class(re.compile(r"\bbad\b"))
    shot(page, "till-refused-cooldown")
    assert stamps_at(live_server, cafe, ada) == 1

    # A US scanner on a German keyboard: ':' comes out as 'Ö', '/' as '-', Y and Z swapped.
    bea = new_card(live_server)
    german = str.maketrans({":": "Ö", "/": "-", "Y": "Z", "Z": "Y"})
    scanner_types(page, card_qr_text(live_server.url, bea).translate(german), delay=5)
    expect(count).to_have_text("0 of 5 stamps")
    page.get_by_role("button", name="+3", exact=True).click()
    expect(result).to_have_text("+3 stamps, now 3 of 5")
    assert stamps_at(live_server, cafe, bea) == 3

    # Something that is no card at all.
    scanner_types(page, "https://example.com/some/other/qr/code")
    expect(result).to_have_text("Not a treu card. Scan it again.")
    expect(page.get_by_text("Scan a card")).to_be_visible()
    shot(page, "till-not-a-card")

    # A reward is due: redeeming asks first, naming the reward.
    cleo = new_card(live_server)
    httpx.post(
        f"{live_server.url}/api/v1/stamps", json={"token": cleo, "count": 5},
        headers={**cafe.auth, "Idempotency-Key": "seed-cleo"},
    ).raise_for_status()  # fmt: skip
    page.get_by_label("Scanner or typing: the card's link or code").fill(cleo)  # pasted
    page.keyboard.press("Enter")
    expect(count).to_have_text("5 of 5 stamps")
    expect(page.locator("#till-due")).to_have_text("Reward due: 1 free coffee")
    shot(page, "till-reward-due")
    page.get_by_role("button", name="Redeem: 1 free coffee").click()
    dialog = page.locator("#till-confirm")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Give 1 free coffee?")
    expect(dialog).to_contain_text("This uses 5 stamps of the card.")
    shot(page, "till-confirm-redeem")
    dialog.get_by_role("button", name="Yes, redeem").click()
    expect(result).to_have_text("Redeemed: 1 free coffee. 0 stamps left.")
    expect(page.locator("#till-due")).to_be_hidden()
    assert stamps_at(live_server, cafe, cleo) == 0
    shot(page, "till-redeemed")

    # The wrong card was redeemed: one tap undoes it.
    page.get_by_role("button", name="Undo redemption").click()
    expect(result).to_have_text("Undone. The card has 5 of 5 stamps.")
    expect(page.locator("#till-last")).to_be_hidden()
    assert stamps_at(live_server, cafe, cleo) == 5
    shot(page, "till-undone")

    # The network drops. Customers still get their stamps; redeeming must wait.
    before = stamp_entries(app, cafe)
    offline_cards = [new_card(live_server) for _ in range(3)]
    tablet.set_offline(True)
    for i, token in enumerate(offline_cards[:2], start=1):
        scanner_types(page, f"{live_server.url}/c/{token}")
        expect(page.locator("#till-hint")).to_have_text(re.compile("^Offline: the card is genuine"))
        page.keyboard.press("Enter")
        expect(result).to_have_text(re.compile(r"^Saved on this till: \+1\."))
        expect(waiting).to_have_text(f"{i} waiting to be sent")
    expect(page.locator("#till-net")).to_have_text("Offline")
    shot(page, "till-offline-queued")
    # A second tap for the same card is refused on the till itself, as the server would.
    page.keyboard.press("Enter")
    expect(result).to_have_text(re.compile(r"^Already stamped \d+ seconds ago"))
    # A mistake made offline is undone on the till: the stamp never leaves it.
    scanner_types(page, new_card(live_server))
    page.get_by_role("button", name="+2", exact=True).click()
    expect(waiting).to_have_text("3 waiting to be sent")
    page.get_by_role("button", name="Undo +2").click()
    expect(result).to_have_text("Undone. The offline stamp will not be sent.")
    expect(waiting).to_have_text("2 waiting to be sent")
    # A forged card is caught without the server: the signature is checked on the till.
    forged = offline_cards[0][:-8] + ("A" if offline_cards[0][-8] != "A" else "B") + "2" * 7
    scanner_types(page, forged)
    expect(result).to_have_text("Not a treu card. Scan it again.")
    # Offline the till knows no balance (it keeps no customer's card data on the tablet), so it
    # offers stamps only and says that redeeming must wait.
    scanner_types(page, cleo)
    expect(page.locator("#till-hint")).to_have_text(re.compile("Redeeming needs the network.$"))
    expect(page.get_by_role("button", name="Redeem: 1 free coffee")).to_have_count(0)
    shot(page, "till-offline-redeem")
    assert stamp_entries(app, cafe) == before  # nothing reached the server

    # The network is back while the till is open: the waiting stamps go at once.
    tablet.set_offline(False)
    expect(waiting).to_be_hidden(timeout=15_000)
    expect(page.locator("#till-net")).to_have_text("Online")
    # It drops again; the third customer; the tab is closed, and opened again still offline:
    # the service worker brings the till back, with the stamp still waiting.
    tablet.set_offline(True)
    scanner_types(page, offline_cards[2])
    page.keyboard.press("Enter")
    expect(waiting).to_have_text("1 waiting to be sent")
    page.close()
    page = tablet.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/till")
    expect(page.locator("#till-net")).to_have_text("Offline")
    expect(page.locator("#till-waiting")).to_have_text("1 waiting to be sent")
    tablet.set_offline(False)
    expect(page.locator("#till-result-text")).to_have_text("1 offline stamp sent.", timeout=15_000)
    expect(page.locator("#till-waiting")).to_be_hidden()
    # Exactly those three stamps reached the server: none lost, none twice.
    after = stamp_entries(app, cafe)
    new = [entry for entry in after if entry not in before]
    assert len(after) == len(before) + 3 and all(delta == 1 for _h, delta in new)
    for token in offline_cards:
        assert stamps_at(live_server, cafe, token) == 1
    shot(page, "till-synced")

    # The owner revokes this tablet: it locks itself at its next request, also after a reload.
    device_id = page.evaluate("JSON.parse(localStorage.getItem('treu.till.device')).device.id")
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, cafe.merchant_id)
        assert merchant is not None
        merchants.revoke_device(
            session=session, merchant=merchant, device_id=device_id, now=app.state.clock()
        )
        session.commit()
    scanner_types(page, ada)
    expect(page.get_by_role("heading", name="This till is locked")).to_be_visible()
    expect(page.get_by_text("device revoked")).to_be_visible()
    assert page.evaluate("localStorage.getItem('treu.till.device')") is None
    shot(page, "till-revoked")
    page.reload()
    expect(page.get_by_role("heading", name="This till is locked")).to_be_visible()
    page.get_by_role("button", name="Pair this browser again").click()
    expect(page.get_by_role("heading", name="This browser is not a till yet")).to_be_visible()
    assert not errors


def card_video(token: str, base_url: str, path: Path) -> Path:
    """A few Y4M frames (640x480, 4:2:0) showing the card's QR, for Chromium's fake camera."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(card_qr_text(base_url, token))
    code.make(fit=True)
    qr_image = code.make_image().convert("RGB").resize((440, 440), Image.Resampling.NEAREST)
    frame = Image.new("RGB", (640, 480), "white")
    frame.paste(qr_image, (100, 20))
    y, cb, cr = frame.convert("YCbCr").split()
    half = (320, 240)
    planes = y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes()
    with path.open("wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for _ in range(5):
            f.write(b"FRAME\n" + planes)
    return path


def test_the_camera_scans_a_card_and_the_stamp_lands(
    playwright: Playwright, app: FastAPI, live_server: LiveServer, cafe: Shop, tmp_path: Path
) -> None:
    token = new_card(live_server)
    video = card_video(token, live_server.url, tmp_path / "card.y4m")
    camera_browser = launch_chromium(
        playwright,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    )
    try:
        context = camera_browser.new_context(base_url=live_server.url, locale="de-AT", **TABLET)
        page = context.new_page()
        elsewhere: list[str] = []
        page.on(
            "request",
            lambda r: elsewhere.append(r.url) if not r.url.startswith(live_server.url) else None,
        )
        pair(page, app, cafe, "Theke")
        # German till: the card is recognised from the live picture, Enter stamps it.
        expect(page.locator("#till-count-text")).to_have_text("0 von 5 Stempeln", timeout=15_000)
        expect(page.locator("#till-camera-msg")).to_have_text(
            "Den QR-Code der Karte vor die Kamera halten."
        )
        page.keyboard.press("Enter")
        expect(page.locator("#till-result-text")).to_have_text("+1 Stempel, jetzt 1 von 5")
        shot(page, "till-camera-de")
        assert stamps_at(live_server, cafe, token) == 1
        # The card stays in view: it is not stamped again, and the cooldown says why.
        page.wait_for_timeout(800)
        page.keyboard.press("Enter")
        expect(page.locator("#till-result-text")).to_have_text(
            re.compile(r"^Schon vor \d+ Sekunden gestempelt\.")
        )
        assert stamps_at(live_server, cafe, token) == 1
        # The decoder's WebAssembly came from treu, not from a CDN.
        assert not elsewhere
    finally:
        camera_browser.close()


def test_stamps_by_claim_code_for_a_shop_without_a_scanner(
    tablet: BrowserContext, app: FastAPI, live_server: LiveServer, cafe: Shop
) -> None:
    page = tablet.new_page()
    pair(page, app, cafe, "Counter")
    page.get_by_role("button", name="QR for a phone").click()
    dialog = page.locator("#till-claim")
    dialog.get_by_role("button", name="2", exact=True).click()
    expect(dialog.locator("#till-claim-what")).to_have_text("2 stamps for 1 free coffee")
    qr = dialog.locator("#till-claim-qr")
    expect(qr).to_have_attribute("alt", re.compile(rf"^{re.escape(live_server.url)}/k/"))
    # (wait_for_function would evaluate a string, which the page's CSP rightly forbids)
    for _ in range(50):
        if qr.evaluate("img => img.complete && img.naturalWidth > 0"):
            break
        page.wait_for_timeout(100)
    assert qr.evaluate("img => img.naturalWidth") > 0
    expect(dialog.locator("#till-claim-state")).to_contain_text("Valid for")
    shot(page, "till-claim-qr")
    claim_url = qr.get_attribute("alt")
    assert claim_url is not None
    # The customer's phone claims it with its card.
    token = new_card(live_server)
    code = claim_url.rsplit("/", 1)[1]
    claimed = httpx.post(f"{live_server.url}/api/v1/claims/{code}", json={"token": token})
    assert claimed.status_code == 201, claimed.text
    expect(dialog.locator("#till-claim-state")).to_have_text(
        "Claimed ✓ +2 on the customer's card", timeout=5_000
    )
    shot(page, "till-claimed")
    assert stamps_at(live_server, cafe, token) == 2
    with Session(app.state.engine) as session:
        total = session.exec(
            select(func.count()).where(col(LedgerEntry.merchant_id) == cafe.merchant_id)
        ).one()
    assert total == 1
