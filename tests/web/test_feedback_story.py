"""Feedback as people use it, in real Chromium: a customer with a stamped card leaves a 2-star
comment with a phone number in it, sees it removed, the owner replies from the inbox, the reply
shows on the card, the customer follows the public review link, and the owner's figures count it."""

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from tests.helpers.browser import LiveServer, screenshot
from tests.helpers.shops import make_shop

pytestmark = pytest.mark.browser

PLACE_ID = "ChIJN1t_tDeuEmsRUsoyG83frY4"
GOOGLE = f"https://search.google.com/local/writereview?placeid={PLACE_ID}"
COMMENT = "Kaffee war kalt und 20 Minuten Wartezeit. Ruft mich an: 0660/123 45 67"


@pytest.fixture
def laptop(browser: Browser, live_server: LiveServer) -> Iterator[BrowserContext]:
    """The shop owner's browser."""
    context = browser.new_context(
        base_url=live_server.url, locale="en-GB", viewport={"width": 1280, "height": 900}
    )
    yield context
    context.close()


def watch_console(page: Page) -> list[str]:
    problems: list[str] = []

    def record(message: ConsoleMessage) -> None:
        # The browser's own favicon request is no page's doing.
        if "favicon.ico" in message.location.get("url", ""):
            return
        if message.type == "error" or "Content Security Policy" in message.text:
            problems.append(f"{message.text} at {message.location}")

    page.on("console", record)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    return problems


def test_feedback_story(
    page: Page, phone: BrowserContext, laptop: BrowserContext, live_server: LiveServer,
    app: FastAPI,
) -> None:  # fmt: skip
    shop = make_shop(app, "Café Sonne", review_url=GOOGLE)
    phone_problems = watch_console(page)
    # Google is not reachable from the test machine: stand in for its review page.
    phone.route(
        "https://search.google.com/**",
        lambda route: route.fulfill(status=200, content_type="text/html",
                                    body="<title>Google review</title><h1>Write a review</h1>"),
    )  # fmt: skip

    # A card from the shop's poster, stamped at the till.
    page.goto(f"/m/{shop.slug}")
    page.get_by_role("button", name="Get my card").click()
    page.wait_for_url(re.compile(r"/c/[A-Z2-7]{136}$"))
    token = page.url.rsplit("/", 1)[1]
    stamped = httpx.post(
        f"{live_server.url}/api/v1/stamps", json={"token": token},
        headers={**shop.auth, "Idempotency-Key": uuid.uuid4().hex},
    )  # fmt: skip
    assert stamped.status_code == 201, stamped.text

    # The card offers feedback for the shop it was stamped at.
    page.reload()
    page.get_by_role("link", name="Give feedback").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Feedback for Café Sonne")
    page.get_by_text("Bad", exact=True).click()  # the big "2" button
    page.get_by_text("Waiting time", exact=True).click()
    page.get_by_label("Comment").fill(COMMENT)
    expect(page.locator("#comment-count")).to_have_text(f"{len(COMMENT)}/500")
    screenshot(page, "feedback-form-phone")
    page.get_by_role("button", name="Send feedback").click()

    # Thanks, what was removed and why, and the review link (also after 2 stars).
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    expect(page.locator("#removed")).to_contain_text("We removed a phone number")
    mine = page.locator("#conversation .comment").first
    expect(mine).to_have_text("Kaffee war kalt und 20 Minuten Wartezeit. Ruft mich an: [removed]")
    expect(page.get_by_text("0660")).to_have_count(0)
    review = page.get_by_role("link", name="Write a public review")
    expect(review).to_be_visible()
    screenshot(page, "feedback-sent-phone", full_page=True)

    # The owner logs in and finds it in the inbox, new, with figures beside it.
    owner = laptop.new_page()
    owner_problems = watch_console(owner)
    owner.goto("/merchant/login")
    owner.get_by_label("E-mail").fill(shop.owner_email)
    owner.get_by_label("Password").fill(shop.owner_password)
    owner.get_by_role("button", name="Log in").click()
    owner.wait_for_url(re.compile(r"/merchant/"))
    owner.goto("/merchant/feedback")
    item = owner.locator("#inbox li").first
    expect(item.locator(".badge.new")).to_have_text("New")
    expect(item.locator(".comment")).to_have_text(
        "Kaffee war kalt und 20 Minuten Wartezeit. Ruft mich an: [removed]"
    )
    expect(item.locator(".chip")).to_have_text(["Waiting time"])
    expect(owner.locator("#fig-csat")).to_have_text("fewer than 10")
    item.get_by_label("Your reply").fill("Das tut uns leid! Die Maschine ist repariert.")
    item.get_by_role("button", name="Send reply").click()
    expect(owner.get_by_role("status")).to_have_text(
        "Your reply was sent. The customer sees it on their card."
    )
    expect(owner.locator("#inbox li").first.locator(".status")).to_have_text("Not read yet")
    screenshot(owner, "feedback-inbox-replied", full_page=True)

    # The reply on the card, under that shop, marked new.
    page.goto(f"/c/{token}")
    card_reply = page.locator(f"#m-{shop.slug} .reply")
    expect(card_reply).to_contain_text("Das tut uns leid! Die Maschine ist repariert.")
    expect(card_reply.locator(".badge")).to_be_visible()
    card_reply.scroll_into_view_if_needed()
    screenshot(page, "feedback-reply-on-card")
    page.goto(f"/c/{token}/feedback/{shop.slug}")
    reply = page.locator("#conversation .reply")
    expect(reply.locator(".reply-text")).to_have_text(
        "Das tut uns leid! Die Maschine ist repariert."
    )
    expect(reply.locator(".badge")).to_have_text("New")
    # Shown once, then read: the card's badge is gone and the owner sees it was read.
    page.goto(f"/c/{token}")
    expect(page.locator(f"#m-{shop.slug} .reply")).to_be_visible()
    expect(page.locator(f"#m-{shop.slug} .reply .badge")).to_have_count(0)

    # The public review link, through the counting redirect, to Google's review page.
    page.goto(f"/c/{token}/feedback/{shop.slug}?saved=1")
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Write a public review").click()
    google = opened.value
    google.wait_for_load_state()
    assert google.url == GOOGLE
    expect(google.get_by_role("heading")).to_have_text("Write a review")

    # Everything in the owner's figures (a tiny shop: the operator lowered k to 1 for this).
    app.state.settings.k_anonymity = 1
    owner.goto("/merchant/feedback")
    expect(owner.locator("#fig-clicks")).to_have_text("1")
    expect(owner.locator("#fig-count")).to_have_text("1")
    expect(owner.locator("#fig-average")).to_have_text("2.0")
    expect(owner.locator("#fig-csat")).to_have_text("0%")
    expect(owner.locator("#fig-response")).to_have_text("100%")
    expect(owner.locator("#fig-nps")).to_have_text("-")  # the optional question was skipped
    expect(owner.locator("#inbox li").first.locator(".status")).to_have_text("Read")
    screenshot(owner, "feedback-figures", full_page=True)
    assert phone_problems == [] and owner_problems == []
