"""The till in real Chromium when the server answers 503: the stamp is kept on the till, as if
the network were down, and sent again later with its Idempotency-Key, written exactly once.

The 503 is real: the app runs its ledger writer in a child process, as `treu serve` does, and
that child is stopped while the stamp waits for it, then killed.
"""

import os
import re
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Response, expect
from sqlmodel import Session, func, select

from app.config import Settings
from app.ledger.models import LedgerEntry
from app.main import create_app
from tests.helpers.browser import LiveServer
from tests.helpers.clock import Clock
from tests.helpers.shops import make_shop, new_pairing

pytestmark = pytest.mark.browser


@pytest.fixture
def app(settings: Settings, clock: Clock) -> Iterator[FastAPI]:
    """The app as `treu serve` runs it: the ledger writer in a child process."""
    application = create_app(settings, clock=clock, writer_process=True)
    yield application
    application.state.writer.stop()
    application.state.engine.dispose()


def test_a_503_keeps_the_stamp_on_the_till_and_sends_it_later(
    browser: Browser, app: FastAPI, live_server: LiveServer
) -> None:
    cafe = make_shop(app, "Café Sonne", stamps_required=5, reward="1 free coffee")
    context = browser.new_context(
        base_url=live_server.url, locale="en-GB", viewport={"width": 1024, "height": 768}
    )
    page = context.new_page()
    stamps_answered: list[int] = []

    def seen(response: Response) -> None:
        if response.url.endswith("/api/v1/stamps"):
            stamps_answered.append(response.status)

    page.on("response", seen)
    page.goto(new_pairing(app, cafe, "Counter").url)
    expect(page).to_have_url(re.compile(r"/till$"))
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    token = httpx.post(f"{live_server.url}/api/v1/cards").json()["token"]
    page.keyboard.type(f"{live_server.url}/c/{token}")
    page.keyboard.press("Enter")
    expect(page.locator("#till-count-text")).to_have_text("0 of 5 stamps")

    # The stamp waits for the ledger writer, which dies under it: the server answers 503.
    writer = app.state.writer
    child = writer._process
    os.kill(child.pid, signal.SIGSTOP)
    page.keyboard.press("Enter")
    deadline = time.monotonic() + 4  # well within the till's own 5 s timeout
    while not writer._waiting:
        assert time.monotonic() < deadline, "the stamp did not reach the ledger writer"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=10)

    # The till takes it as being offline: the stamp is kept, nothing is shown as refused.
    saved = re.compile(r"^Saved on this till: \+1\.")
    expect(page.locator("#till-result-text")).to_have_text(saved)
    expect(page.locator("#till-waiting")).to_have_text("1 waiting to be sent")
    expect(page.locator("#till-net")).to_have_text("Offline")
    assert stamps_answered == [503]

    # The till asks again (every 10 s); a new writer answers, and the stamp goes, once.
    expect(page.locator("#till-waiting")).to_be_hidden(timeout=30_000)
    expect(page.locator("#till-net")).to_have_text("Online")
    expect(page.locator("#till-count-text")).to_have_text("1 of 5 stamps")
    assert stamps_answered == [503, 201]
    with Session(app.state.engine) as session:
        assert session.exec(select(func.count()).select_from(LedgerEntry)).one() == 1
    context.close()
