"""create_app(): settings, keys, database, the ledger writer, routers and error handlers."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from app.clock import Clock, utcnow
from app.config import Settings
from app.db import make_engine
from app.errors import install_error_handlers, problem_response
from app.ledger.router import router as ledger_router
from app.ledger.writer import LedgerWriter
from app.limits import BodyLimit
from app.merchants.dependencies import DeviceIdentity
from app.tokens.keys import load_keyring
from app.tokens.router import keys_router
from app.tokens.router import router as cards_router

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def create_app(settings: Settings | None = None, clock: Clock = utcnow) -> FastAPI:
    settings = settings or Settings()
    engine = make_engine(settings.resolved_database_url)
    writer = LedgerWriter(engine, retention_hours=settings.idempotency_retention_hours)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        yield
        writer.stop()
        engine.dispose()

    app = FastAPI(
        title="treu",
        version="0.1.0",
        summary="Anonymous, registration-free digital stamp cards for small merchants.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.keyring = load_keyring(settings)
    app.state.writer = writer
    app.state.clock = clock
    app.state.device_cache = dict[str, DeviceIdentity]()
    app.state.in_flight = set[tuple[int, str]]()

    install_error_handlers(app)
    app.include_router(cards_router)
    app.include_router(ledger_router)
    app.include_router(keys_router)

    @app.get("/healthz", tags=["ops"])
    def healthz(request: Request) -> JSONResponse:
        """200 when the app and its database answer."""
        try:
            with request.app.state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            logging.getLogger("treu").exception("health check failed")
            return problem_response(503, "Unavailable", "The database does not answer.")
        return JSONResponse({"status": "ok"})

    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
