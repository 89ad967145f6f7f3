"""The `treu` command: init, serve, db upgrade, merchants, devices, demo, printed cards."""

import asyncio
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from app.clock import utcnow
from app.config import Settings
from app.db import make_engine, write_engine
from app.errors import AppError
from app.merchants import service as merchants
from app.merchants.exceptions import MerchantError
from app.merchants.models import ProgramBase
from app.tokens.keys import KeyProblem


class Context:
    def __init__(self, settings: Settings, as_json: bool) -> None:
        self.settings = settings
        self.as_json = as_json

    @contextmanager
    def session(self) -> Iterator[Session]:
        engine = make_engine(self.settings.resolved_database_url)
        try:
            with Session(write_engine(engine), expire_on_commit=False) as session:
                yield session
                session.commit()
        finally:
            engine.dispose()

    def emit(self, data: dict[str, Any], text: str) -> None:
        click.echo(json.dumps(data, indent=2, default=str) if self.as_json else text)


pass_ctx = click.make_pass_decorator(Context)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _json(ctx: Context, as_json: bool) -> None:
    ctx.as_json = ctx.as_json or as_json


class Refused(click.ClickException):
    """A command that cannot be carried out: one line on stderr, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"treu: {self.format_message()}", err=True)


class TreuGroup(click.Group):
    """Turns expected failures into a clear message instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AppError as error:
            raise Refused(error.detail) from None
        except KeyProblem as error:
            raise Refused(str(error)) from None
        except DBAPIError as error:
            reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
            raise Refused(
                f"the database cannot be used ({reason}); run `treu init` first, "
                "or check TREU_DATABASE_URL"
            ) from None


def _program_range(field: str) -> click.IntRange:
    """The range a program field allows, so the CLI refuses what the model would refuse."""
    bounds: dict[str, int] = {}
    for rule in ProgramBase.model_fields[field].metadata:
        bounds.update({k: getattr(rule, k) for k in ("ge", "le") if hasattr(rule, k)})
    return click.IntRange(bounds.get("ge"), bounds.get("le"))


# Slow clients. uvicorn closes a connection that idles between two requests (timeout_keep_alive)
# but none that is still *sending* one, and it has no header timeout: a client that trickles its
# request a byte at a time, or connects and says nothing, held its connection (a socket, a file
# descriptor) for good, and httptools took 13 MB of headers in one request. A reverse proxy
# should cut such clients off before they reach treu (README, "Operations"); these are the
# bounds when none does.
REQUEST_SECONDS = 10  # to receive a whole request, head and body, from its first byte
MAX_HEAD_BYTES = 64 * 1024  # the request line and headers (and what of the body comes along)
KEEP_ALIVE_SECONDS = 5  # idle between two requests on one connection (uvicorn's default)
MAX_CONCURRENCY = 1000  # open connections or requests at once; beyond, uvicorn answers 503
BACKLOG = 2048  # connections the kernel queues until they are accepted
SHUTDOWN_SECONDS = 20  # a graceful stop waits this long for the requests under way


def run_server(app: Any, host: str, port: int) -> None:
    """Serve an ASGI app as `treu serve` does; bench/ceiling.py serves its app through this too.

    One process, one worker, uvicorn's fastest protocol and event loop, and no access log: a
    customer's request is never logged (no IP address, no user agent).
    """
    import uvicorn

    from app.process import settle_garbage_collector

    settle_garbage_collector()
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=_bounded_protocol(),
        loop="uvloop",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        limit_concurrency=MAX_CONCURRENCY,
        backlog=BACKLOG,
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )


def _bounded_protocol() -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, with a deadline and a size limit for receiving a request."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedProtocol(HttpToolsProtocol):
        # Armed when a connection opens, and when a read ends with a request begun but not
        # complete (one that arrives in one read, as most do, costs no timer); disarmed once
        # the request is complete: the app's time to answer is not bounded here.
        _deadline: asyncio.TimerHandle | None = None
        _receiving = False  # a request has begun and is not complete
        _head: int | None = 0  # bytes received of the request head; None once it is complete

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._head is not None:
                self._head += len(data)
                if self._head > MAX_HEAD_BYTES:
                    self._refuse(b"431 Request Header Fields Too Large")
                    return
            super().data_received(data)
            if self._receiving and self._deadline is None:
                self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._receiving = True

        def on_headers_complete(self) -> None:
            self._head = None
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._receiving = False
            self._disarm()
            self._head = 0  # what comes next is the next request's head
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(REQUEST_SECONDS, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            self.transport.close()

        def _refuse(self, status: bytes) -> None:
            self._disarm()
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()

    return BoundedProtocol


@click.group(cls=TreuGroup)
@click.option("--data-dir", envvar="TREU_DATA_DIR", type=click.Path(path_type=Path))
@click.option("--database-url", envvar="TREU_DATABASE_URL")
@click.option("--public-url", envvar="TREU_PUBLIC_URL")
@json_option
@click.pass_context
def cli(
    click_ctx: click.Context,
    data_dir: Path | None,
    database_url: str | None,
    public_url: str | None,
    as_json: bool,
) -> None:
    """treu: anonymous stamp cards for small merchants."""
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url:
        overrides["database_url"] = database_url
    if public_url:
        overrides["public_url"] = public_url
    click_ctx.obj = Context(Settings(**overrides), as_json)


@cli.command()
@json_option
@pass_ctx
def init(ctx: Context, as_json: bool) -> None:
    """Create the keys (never overwriting any) and bring the database schema up to date."""
    from app.migrations import upgrade
    from app.tokens.keys import init_keys

    _json(ctx, as_json)
    # The data dir holds the keys and the SQLite file: only treu's user may read it.
    ctx.settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = init_keys(ctx.settings)
    url = make_url(ctx.settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    upgrade(ctx.settings.resolved_database_url)
    data_dir, database = ctx.settings.data_dir.resolve(), _database_named(url)
    ctx.emit(
        {"keys_created": created, "data_dir": str(data_dir), "database": database},
        f"keys: {', '.join(created) or 'all present'} ({data_dir / 'keys'}); "
        f"database up to date: {database}",
    )


def _database_named(url: URL) -> str:
    """The database a command worked on, as a person finds it again: the SQLite file, or the
    server's URL with the database name (never the password)."""
    if url.get_backend_name() == "sqlite":
        in_memory = url.database in (None, "", ":memory:")
        return "SQLite in memory" if in_memory else str(Path(str(url.database)).resolve())
    return url.set(password=None).render_as_string(hide_password=False)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@pass_ctx
def serve(ctx: Context, host: str, port: int) -> None:
    """Serve treu over HTTP (no access log: customer requests are never logged)."""
    from app.main import create_app

    os.environ.setdefault("TREU_DATA_DIR", str(ctx.settings.data_dir))
    run_server(create_app(ctx.settings, writer_process=True), host, port)


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Apply every pending migration."""
    from app.migrations import upgrade

    upgrade(ctx.settings.resolved_database_url)
    click.echo("database up to date")


@cli.group()
def merchant() -> None:
    """Merchants and their programs."""


@merchant.command("create")
@click.option("--name", required=True)
@click.option("--stamps-required", required=True, type=_program_range("stamps_required"))
@click.option("--reward", required=True)
@click.option("--slug", help="Lower-case letters, digits and hyphens (default: from the name).")
@click.option(
    "--cooldown-seconds", default=60, show_default=True, type=_program_range("cooldown_seconds")
)
@click.option(
    "--max-stamps-per-scan", default=10, show_default=True,
    type=_program_range("max_stamps_per_scan"),
)  # fmt: skip
@click.option(
    "--daily-cap", default=0, show_default=True, type=_program_range("daily_cap"), help="0: no cap"
)
@click.option("--city", default="")
@click.option("--category", default="")
@click.option("--review-url", default="")
@click.option("--owner-email")
@json_option
@pass_ctx
def merchant_create(ctx: Context, /, as_json: bool, **options: Any) -> None:
    """Create a merchant, its first program and the owner's login."""
    _json(ctx, as_json)
    with ctx.session() as session:
        new = merchants.create_merchant(
            session=session,
            name=options["name"],
            stamps_required=options["stamps_required"],
            reward=options["reward"],
            slug=options["slug"],
            cooldown_seconds=options["cooldown_seconds"],
            max_stamps_per_scan=options["max_stamps_per_scan"],
            daily_cap=options["daily_cap"],
            city=options["city"],
            category=options["category"],
            review_url=options["review_url"],
            owner_email=options["owner_email"],
            now=utcnow(),
        )
    ctx.emit(
        {
            "slug": new.merchant.slug,
            "program_id": new.program.id,
            "owner_email": new.owner_email,
            "owner_password": new.owner_password,
        },
        f"merchant {new.merchant.slug} created (program {new.program.id})\n"
        f"owner login: {new.owner_email} / {new.owner_password}",
    )


@merchant.command("list")
@json_option
@pass_ctx
def merchant_list(ctx: Context, as_json: bool) -> None:
    """List the merchants."""
    from sqlmodel import col, select

    from app.merchants.models import Merchant

    _json(ctx, as_json)
    with ctx.session() as session:
        rows = session.exec(select(Merchant).order_by(col(Merchant.id))).all()
        data = [{"id": m.id, "slug": m.slug, "name": m.name, "city": m.city} for m in rows]
    ctx.emit({"merchants": data}, "\n".join(f"{m['slug']}\t{m['name']}" for m in data))


@merchant.command("password")
@click.option("--merchant", "slug", required=True)
@click.option("--password", help="The new password (default: a new random one, shown once).")
@json_option
@pass_ctx
def merchant_password(ctx: Context, slug: str, password: str | None, as_json: bool) -> None:
    """Give the owner a new password (a forgotten one); logs the owner out everywhere."""
    from sqlmodel import select

    from app.merchants.auth import end_other_sessions
    from app.merchants.models import Owner

    _json(ctx, as_json)
    with ctx.session() as session:
        m = merchants.get_merchant(session=session, slug=slug)
        owner = session.exec(select(Owner).where(Owner.merchant_id == m.id)).first()
        if owner is None or owner.id is None:
            raise MerchantError(f"{slug} has no owner login.")
        new = password or merchants.new_password()
        merchants.set_owner_password(session=session, owner=owner, password=new)
        end_other_sessions(session=session, owner_id=owner.id, keep=None)
        email = owner.email
    ctx.emit(
        {"slug": slug, "owner_email": email, "owner_password": new},
        f"new password for {email}: {new}",
    )


@cli.command("maintenance")
@json_option
@pass_ctx
def maintenance_round(ctx: Context, as_json: bool) -> None:
    """One round of housekeeping (`treu serve` runs it hourly): idle cards, old login counts."""
    from app import maintenance

    _json(ctx, as_json)
    engine = make_engine(ctx.settings.resolved_database_url)
    try:
        removed = maintenance.run_once(engine, ctx.settings, utcnow())
    finally:
        engine.dispose()
    words = ", ".join(f"{name.replace('_', ' ')} removed: {n}" for name, n in removed.items())
    ctx.emit(removed, words)


@cli.group()
def analytics() -> None:
    """The merchants' dashboards."""


@analytics.command("rebuild")
@click.option("--merchant", "slug", help="Only this merchant (default: all).")
@pass_ctx
def analytics_rebuild(ctx: Context, slug: str | None) -> None:
    """Recompute the dashboards' rollups from the ledger (after an import or a restore)."""
    from app.ledger.projections import rebuild_rollups

    with ctx.session() as session:
        merchant_id = merchants.get_merchant(session=session, slug=slug).id if slug else None
        rebuild_rollups(session.connection(), merchant_id=merchant_id)
    click.echo(f"rollups rebuilt for {slug or 'every merchant'}")


@cli.group()
def device() -> None:
    """Cashier devices."""


@device.command("create")
@click.option("--merchant", "slug", required=True)
@click.option("--label", default="")
@json_option
@pass_ctx
def device_create(ctx: Context, slug: str, label: str, as_json: bool) -> None:
    """Create a cashier device; its secret is shown once."""
    _json(ctx, as_json)
    with ctx.session() as session:
        m = merchants.get_merchant(session=session, slug=slug)
        dev, secret = merchants.create_device(
            session=session, merchant=m, now=utcnow(), label=label
        )
    ctx.emit(
        {"device_id": dev.id, "secret": secret},
        f"device {dev.id} ({dev.label}) created; its secret (shown once):\n{secret}",
    )


@device.command("list")
@click.option("--merchant", "slug", required=True)
@json_option
@pass_ctx
def device_list(ctx: Context, slug: str, as_json: bool) -> None:
    """List a merchant's devices."""
    _json(ctx, as_json)
    with ctx.session() as session:
        m = merchants.get_merchant(session=session, slug=slug)
        rows = merchants.list_devices(session=session, merchant=m)
        data = [
            {
                "device_id": d.id,
                "label": d.label,
                "created_at": d.created_at,
                "last_seen_at": d.last_seen_at,
                "revoked_at": d.revoked_at,
            }
            for d in rows
        ]
    lines = [
        f"{d['device_id']}\t{d['label']}\t{'revoked' if d['revoked_at'] else 'active'}"
        f"\tlast seen {d['last_seen_at'] or 'never'}"
        for d in data
    ]
    ctx.emit({"devices": data}, "\n".join(lines) or "no devices")


@device.command("revoke")
@click.option("--merchant", "slug", required=True)
@click.option("--device", "device_id", required=True, type=int)
@json_option
@pass_ctx
def device_revoke(ctx: Context, slug: str, device_id: int, as_json: bool) -> None:
    """Revoke a device: it is refused from its next request on."""
    _json(ctx, as_json)
    with ctx.session() as session:
        m = merchants.get_merchant(session=session, slug=slug)
        dev = merchants.revoke_device(
            session=session, merchant=m, device_id=device_id, now=utcnow()
        )
    ctx.emit({"device_id": dev.id, "revoked_at": dev.revoked_at}, f"device {dev.id} revoked")


@device.command("pair")
@click.option("--merchant", "slug", required=True)
@click.option("--label", default="", help="Name of the new till, e.g. 'Counter'.")
@json_option
@pass_ctx
def device_pair(ctx: Context, slug: str, label: str, as_json: bool) -> None:
    """Make a one-time pairing code: open its URL (or scan its QR) on the till's browser."""
    import io

    import qrcode

    from app.merchants.pairing import create_pairing_code, display_code

    _json(ctx, as_json)
    with ctx.session() as session:
        m = merchants.get_merchant(session=session, slug=slug)
        code, url, expires_at = create_pairing_code(
            session=session, merchant=m, now=utcnow(), base_url=ctx.settings.base_url,
            label=label,
        )  # fmt: skip
    drawing = io.StringIO()
    if not ctx.as_json:
        image = qrcode.QRCode(border=2)
        image.add_data(url)
        image.print_ascii(out=drawing, invert=True)
    ctx.emit(
        {"code": code, "url": url, "expires_at": expires_at},
        f"{drawing.getvalue()}\nOpen this on the till (or scan the QR above), once, within "
        f"10 minutes:\n  {url}\nor type the code on its /till page: {display_code(code)}",
    )


@cli.group()
def keys() -> None:
    """Signing keys."""


@keys.command("rotate")
@json_option
@pass_ctx
def keys_rotate(ctx: Context, as_json: bool) -> None:
    """Make a new signing key; the old one keeps verifying the cards it signed."""
    from app.tokens.keys import rotate_signing_key

    _json(ctx, as_json)
    kid = rotate_signing_key(ctx.settings)
    ctx.emit({"kid": kid}, f"new signing key {kid}; restart treu to use it")


@cli.command()
@click.option("--cards", default=400, show_default=True, type=click.IntRange(1))
@click.option("--months", default=4, show_default=True, type=click.IntRange(1, 120))
@click.option("--visits", default=4000, show_default=True, type=click.IntRange(0))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option(
    "--if-empty", is_flag=True,
    help="If there are merchants already, write nothing and print the first run's logins.",
)  # fmt: skip
@json_option
@pass_ctx
def demo(
    ctx: Context, cards: int, months: int, visits: int, seed: int, if_empty: bool, as_json: bool
) -> None:
    """Seed demo merchants, devices and months of history; print logins and a demo card."""
    from app import demo as demo_data

    _json(ctx, as_json)
    result = demo_data.seed(
        ctx.settings, cards=cards, months=months, visits=visits, seed=seed, if_empty=if_empty
    )
    ctx.emit(result, demo_data.describe(result))


@cli.group()
def cards() -> None:
    """Anonymous cards."""


@cards.command("print")
@click.option("--merchant", "slug", required=True)
@click.option("--count", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--out", type=click.Path(path_type=Path), help="HTML file (default: stdout)")
@pass_ctx
def cards_print(ctx: Context, slug: str, count: int, out: Path | None) -> None:
    """A printable sheet of new anonymous cards (QR and recovery code), 10 per A4 page."""
    from app.web.printing import card_sheet

    with ctx.session() as session:
        html = card_sheet(session=session, settings=ctx.settings, slug=slug, count=count)
    if out is None:
        click.echo(html)
    else:
        out.write_text(html)
        click.echo(f"{count} cards written to {out}; open it in a browser and print")


def main() -> None:
    cli()
