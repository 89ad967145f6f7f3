"""The stamp's direct way: POST /api/v1/stamps from the middleware stack straight to its handler.

The stamp is the one request a busy counter makes again and again. FastAPI's way to its
handler (matching the path against every route, the exception middleware, the exit stack,
the request wrapper) costs more per stamp than the signature check and the ledger write
together (see bench/). This runs the same handler; refusals go to the app's own exception
handlers, so the answers are the same to the byte. The FastAPI route stays: it documents the
endpoint in OpenAPI and serves whatever this does not take (another method, a prefix).
"""

from collections.abc import Sequence

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.ledger.router import router, stamp

# The route's own path, so that the two can never part.
STAMP_PATH = router.url_path_for(stamp.__name__)


class DirectStamp:
    def __init__(self, app: ASGIApp, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.app = app
        # What the API's answers carry (app.web.security.api_headers), which the middleware
        # that adds them to every other /api/ answer never sees here: a static list, appended.
        self.headers = list(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != STAMP_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await stamp(request)
        except Exception as exc:
            handlers = scope["app"].exception_handlers
            handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
            if handler is None:
                raise
            response = await handler(request, exc)
        response.raw_headers.extend(self.headers)
        await response(scope, receive, send)
