"""create_app(): settings, keys, database, the ledger writer, routers and error handlers."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from app import maintenance
from app.analytics.router import router as analytics_router
from app.claims.router import router as claims_router
from app.claims.router import till_router as claim_qr_router
from app.clock import Clock, utcnow
from app.config import Settings
from app.db import loop_engine, make_engine
from app.errors import install_error_handlers, problem_responses
from app.feedback.router import router as feedback_router
from app.ledger.direct import DirectStamp
from app.ledger.router import router as ledger_router
from app.ledger.writer import LedgerWriter, WriterProcess
from app.limits import BodyLimit
from app.loyalty.router import router as loyalty_router
from app.merchants.branding import MAX_LOGO_BYTES
from app.merchants.dependencies import DeviceCache
from app.merchants.router import router as till_router
from app.merchants.throttle import FailedLogins, PasswordChecks
from app.ratelimit import RateLimits
from app.tokens.keys import load_keyring
from app.tokens.router import keys_router
from app.tokens.router import router as cards_router
from app.web import (
    api_docs,
    customer,
    feedback,
    legal,
    merchant,
    merchant_dashboard,
    merchant_loyalty,
    till,
)
from app.web.assets import STATIC_DIR, vendor_apps
from app.web.errors import error_page
from app.web.security import InputPolicy, SecurityHeaders, api_headers

# A health check waits this long for the ledger writer (behind a full batch) to answer.
HEALTH_TIMEOUT_SECONDS = 5.0


def create_app(
    settings: Settings | None = None, clock: Clock = utcnow, *, writer_process: bool = False
) -> FastAPI:
    """The app; writer_process: run the ledger writer in a child process (`treu serve`)."""
    settings = settings or Settings()
    engine = make_engine(settings.resolved_database_url)
    reads_on_loop = loop_engine(settings.resolved_database_url)
    retention = settings.idempotency_retention_hours
    writer: LedgerWriter | WriterProcess = (
        WriterProcess(settings.resolved_database_url, retention_hours=retention)
        if writer_process
        else LedgerWriter(engine, retention_hours=retention)
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        housekeeping = asyncio.create_task(maintenance.run_forever(engine, settings, clock))
        yield
        housekeeping.cancel()
        writer.stop()
        engine.dispose()
        if reads_on_loop is not None:
            reads_on_loop.dispose()

    app = FastAPI(
        title="treu",
        version="0.1.0",
        summary="Anonymous, registration-free digital stamp cards for small merchants.",
        lifespan=lifespan,
        # No request spans, metrics or logs: they would record client addresses (privacy) and
        # cost the stamp path a provider look-up per request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        # Swagger UI is served by treu itself, under its own CSP (app.web.api_docs); ReDoc
        # would come from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.loop_engine = reads_on_loop
    app.state.keyring = load_keyring(settings)
    app.state.writer = writer
    app.state.clock = clock
    app.state.device_cache = DeviceCache()
    app.state.in_flight = set[tuple[int, str]]()
    app.state.rate_limits = RateLimits.from_settings(settings)
    app.state.failed_logins = FailedLogins()
    app.state.password_checks = PasswordChecks(settings.password_checks)

    install_error_handlers(app, error_page)

    # FastAPI matches routes one by one, at a few microseconds each: the health check and the
    # stamp (the hot path) come first, so they are found before the hundred routes of the pages.
    @app.get("/healthz", tags=["ops"], responses=problem_responses(503))
    async def healthz(request: Request) -> JSONResponse:
        """200 when the app, its ledger writer, the database and its disk can take a write;
        503 with Retry-After when one cannot (a dead writer, a full disk, no database)."""
        await request.app.state.writer.check(HEALTH_TIMEOUT_SECONDS)
        return JSONResponse({"status": "ok"})

    # JSON routes (each domain's router.py), then the pages (app/web), in one place.
    for json_router in (
        ledger_router, cards_router, keys_router, claims_router, till_router, claim_qr_router,
        feedback_router, analytics_router, loyalty_router,
    ):  # fmt: skip
        app.include_router(json_router)
    app.include_router(feedback.router)
    app.include_router(merchant_dashboard.router)

    @app.get("/sw.js", include_in_schema=False)
    def service_worker() -> FileResponse:
        """The service worker, served from the root so that it may control every page."""
        return FileResponse(
            STATIC_DIR / "sw.js",
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"},
        )

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "icons" / "icon-192.png",
            media_type="image/png",
            headers={"Cache-Control": "public, max-age=604800"},
        )

    for web_router in (
        customer.router, till.router, merchant.router, merchant_loyalty.router, api_docs.router,
        legal.router,
    ):  # fmt: skip
        app.include_router(web_router)
    mount_static(app)
    api_docs.document_api(app)
    # Outermost last: the body limit, the stamp's direct way, the headers, the input policy.
    https = settings.base_url.startswith("https://")
    app.add_middleware(InputPolicy)
    app.add_middleware(SecurityHeaders, https=https)
    app.add_middleware(DirectStamp, headers=api_headers(https))
    # A logo upload may be larger: a photo over the logo's limit is still read, and refused on
    # the account page in words rather than as a bare 413.
    logo_upload = {merchant.LOGO_UPLOAD_PATH: 8 * MAX_LOGO_BYTES}
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, larger=logo_upload)
    return app


def mount_static(app: FastAPI) -> None:
    """static/ and the browser libraries installed by npm (served by treu: no CDN)."""
    for path, files in vendor_apps().items():
        app.mount(path, files)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
