"""What every answer carries for safety, and what no request may carry.

`SecurityHeaders` adds the headers: a strict Content-Security-Policy and no referrer on pages;
`nosniff` and `Cache-Control: no-store` on the API; HSTS everywhere when treu is served over
https. `InputPolicy` refuses an address with a control character (app.inputs). Both are pure
ASGI middleware with static header lists. The stamp (app.ledger.direct) is answered before
either runs and adds the API's list to its answer itself.
"""

from collections.abc import Iterable, Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import AppError
from app.inputs import control_in_address

Header = tuple[bytes, bytes]

# No inline script or style anywhere; WebAssembly (the till's QR decoder) may compile.
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)
HEADERS = {
    "content-security-policy": CSP,
    # Card URLs carry the token: never send them to another site.
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "permissions-policy": "camera=(self), microphone=(), geolocation=()",
}
NO_STORE: Header = (b"cache-control", b"no-store")
NOSNIFF: Header = (b"x-content-type-options", b"nosniff")
# A year; subdomains are the deployer's to decide (a town's other sites may not be https).
HSTS: Header = (b"strict-transport-security", b"max-age=31536000")
# Pages that show a card (its token, stamps, recovery code) or a shop's figures: no browser or
# proxy keeps a copy (a shared tablet's Back button, a proxy's cache).
PRIVATE_PAGES = ("/c/", "/C/", "/merchant/")


def api_headers(https: bool) -> list[Header]:
    """What every /api/ answer carries unless it says otherwise: it holds a card's or a shop's
    data (the card view its recovery code), so no cache keeps it."""
    return [NOSNIFF, NO_STORE, *([HSTS] if https else [])]


def page_headers(https: bool) -> list[Header]:
    headers = [(name.encode(), value.encode()) for name, value in HEADERS.items()]
    return [*headers, *([HSTS] if https else [])]


def with_defaults(raw: Iterable[Header], defaults: Sequence[Header]) -> list[Header]:
    """The headers, plus each default whose name they do not have yet (at the end, in order).
    ASGI response header names are lower case, as the defaults' are."""
    headers = list(raw)
    present = {name for name, _ in headers}
    return headers + [header for header in defaults if header[0] not in present]


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.api = api_headers(https)
        self.pages = page_headers(https)
        self.private_pages = [*self.pages, NO_STORE]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/api/"):
            defaults = self.api
        elif path.startswith(PRIVATE_PAGES):
            defaults = self.private_pages
        else:
            defaults = self.pages

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_defaults(message.get("headers", ()), defaults)
            await send(message)

        await self.app(scope, receive, with_headers)


class ControlCharacter(AppError):
    status = 400
    title = "Bad request"

    def __init__(self) -> None:
        super().__init__(
            "The address holds a control character (such as NUL): no address of treu has one.",
            code="control-character",
        )


class InputPolicy:
    """Refuses an address (path or query) with a control character before any route sees it.
    The answer is the app's own for an AppError: a problem, or the error page for a person."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not control_in_address(scope["path"], scope["query_string"]):
            await self.app(scope, receive, send)
            return
        handler = scope["app"].exception_handlers[AppError]
        response = await handler(Request(scope, receive), ControlCharacter())
        await response(scope, receive, send)
