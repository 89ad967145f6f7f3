"""Browser fixtures: a real treu server on a free port and Debian's headless Chromium.

Pages are tested as a person uses them: Chromium (driven by Playwright) talks HTTP to a real
uvicorn serving the app, whose card QR codes point at that very server. A test that uses
Chromium must be marked `browser`: collection stops on one that is not.
"""

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from app.config import Settings
from tests.helpers.browser import (
    CHROMIUM,
    CHROMIUM_FIXTURES,
    PHONE,
    LiveServer,
    free_port,
    launch_chromium,
)
from tests.helpers.clock import Clock


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: an unmarked test would slip through it
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that drives Chromium carries the `browser` marker, so that
    `pytest -m "not browser"` runs without one. A test that does not is refused here."""
    unmarked = [
        item.nodeid
        for item in items
        if CHROMIUM_FIXTURES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("browser") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests drive Chromium but are not marked @pytest.mark.browser "
            "(add the marker, or `pytestmark = pytest.mark.browser` for the module):\n  "
            + "\n  ".join(unmarked)
        )


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Clock:
    """Browser tests start at the real time, so the page's own clock agrees with the server's;
    the others where every test clock starts (tests/helpers/clock.py), whatever the hour."""
    moving = Clock()
    if request.node.get_closest_marker("browser") is not None:
        moving.now = datetime.now(UTC).replace(microsecond=0)
    return moving


@pytest.fixture
def live_port() -> int:
    return free_port()


@pytest.fixture
def settings(
    database_url: str, tmp_path: Path, key_env: dict[str, str], live_port: int
) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_url=f"http://127.0.0.1:{live_port}",
        rate_limits="off",
        **key_env,  # type: ignore[arg-type]
    )


@pytest.fixture
def live_server(app: FastAPI, live_port: int) -> Iterator[LiveServer]:
    server = LiveServer(app, live_port)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = launch_chromium(playwright)
    yield chromium
    chromium.close()


@pytest.fixture
def phone(browser: Browser, live_server: LiveServer) -> Iterator[BrowserContext]:
    """A phone-sized browser with nothing stored yet, pointed at the live server."""
    context = browser.new_context(base_url=live_server.url, locale="en-GB", **PHONE)
    yield context
    context.close()


@pytest.fixture
def page(phone: BrowserContext) -> Page:
    return phone.new_page()
