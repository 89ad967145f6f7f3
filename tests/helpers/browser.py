"""Debian's headless Chromium (driven by Playwright), a real uvicorn serving the app on a free
port, reading QR codes off screenshots, and keeping screenshots as test artifacts."""

import io
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
import zxingcpp
from fastapi import FastAPI
from PIL import Image
from playwright.sync_api import Browser, Page, Playwright

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
# The fixtures through which a test gets Chromium (every other browser fixture is built on
# them): a test using one must be marked `browser`, so `-m "not browser"` leaves Chromium out.
CHROMIUM_FIXTURES = frozenset({"playwright", "browser"})

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True}  # fmt: skip


def decode_qr(image: Path | bytes) -> list[str]:
    """The texts of the QR codes in an image (a file or PNG bytes), as a phone's camera and the
    till read them: QR codes only, not the short ITF bar code a QR's modules now and then also
    read as (about once in a thousand random cards)."""
    source = io.BytesIO(image) if isinstance(image, bytes) else image
    found = zxingcpp.read_barcodes(Image.open(source), formats=zxingcpp.BarcodeFormat.QRCode)
    return [r.text for r in found]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The app served by uvicorn in a thread, on 127.0.0.1."""

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


def launch_chromium(playwright: Playwright, *extra_args: str) -> Browser:
    """Debian's Chromium, headless; extra args e.g. for a fake camera."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args]
    )


def screenshot(page: Page, name: str, **options: Any) -> Path:
    """Keep a screenshot as a test artifact (test-artifacts/, kept by CI)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **options)
    return path
