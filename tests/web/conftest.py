"""Browser fixtures: a real treu server on a free port and Debian's headless Chromium.

Pages are tested as a person uses them: Chromium (driven by Playwright) talks HTTP to a real
uvicorn serving the app, whose card QR codes point at that very server.
"""

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import zxingcpp
from fastapi import FastAPI
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from app.config import Settings
from tests.conftest import Clock

CHROMIUM = os.environ.get("TREU_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Without these Chromium keeps trying to reach Google's services, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def decode_qr(image: Path | bytes) -> list[str]:
    """The texts of the QR codes in an image (a file or PNG bytes), as a phone's camera and the
    till read them: QR codes only, not the short ITF bar code a QR's modules now and then also
    read as (about once in a thousand random cards)."""
    source = io.BytesIO(image) if isinstance(image, bytes) else image
    found = zxingcpp.read_barcodes(Image.open(source), formats=zxingcpp.BarcodeFormat.QRCode)
    return [r.text for r in found]


PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def clock() -> Clock:
    """Browser tests start at the real time, so the page's own clock agrees with the server's."""
    moving = Clock()
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
        **key_env,  # type: ignore[arg-type]
    )


class LiveServer:
    def __init__(self, app: FastAPI, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False,
                                log_level="warning", lifespan="on")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


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


def launch_chromium(playwright: Playwright, *extra_args: str) -> Browser:
    """Debian's Chromium, headless; extra args e.g. for a fake camera."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args]
    )


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


def screenshot(page: Page, name: str, **options: Any) -> Path:
    """Keep a screenshot as a test artifact (test-artifacts/, kept by CI)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **options)
    return path
