"""The `treu` command: init, serve, db upgrade, merchants, programs, tiers, promotions, devices,
demo, printed cards."""

import asyncio
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel

from app.clock import utcnow
from app.config import Settings
from app.db import make_engine, write_engine
from app.errors import AppError
from app.loyalty import service as loyalty
from app.loyalty.models import KINDS, Promotion, Tier
from app.merchants import service as merchants
from app.merchants.exceptions import MerchantError
from app.merchants.models import Merchant, Program, ProgramBase
from app.tokens.keys import KeyProblem
from app.web.loyalty_text import default_title, promotion_summary


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

    @contextmanager
    def shop(self, slug: str) -> Iterator[tuple[Session, Merchant]]:
        """A session, as session() opens it, and the merchant with this slug in it."""
        with self.session() as session:
            yield session, merchants.get_merchant(session=session, slug=slug)

    def emit(self, data: Any, text: str) -> None:
        click.echo(json.dumps(data, indent=2, default=str) if self.as_json else text)


pass_ctx = click.make_pass_decorator(Context)
JSON_HELP = "Machine-readable output."


def _wants_json(click_ctx: click.Context, _param: click.Parameter, wanted: bool) -> None:
    # A command's own --json: the same as the group's (`treu --json device list`); the group
    # has made the Context by the time a command's options are read.
    ctx = click_ctx.find_object(Context)
    assert ctx is not None
    ctx.as_json = ctx.as_json or wanted


json_option = click.option(
    "--json", is_flag=True, expose_value=False, callback=_wants_json, help=JSON_HELP
)
merchant_option = click.option("--merchant", "slug", required=True)


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


def _field_range(model: type[SQLModel], field: str) -> click.IntRange:
    """The range a model's field allows, so the CLI refuses what the model would refuse."""
    bounds: dict[str, int] = {}
    for rule in model.model_fields[field].metadata:
        bounds.update({k: getattr(rule, k) for k in ("ge", "le") if hasattr(rule, k)})
    return click.IntRange(bounds.get("ge"), bounds.get("le"))


def _program_range(field: str) -> click.IntRange:
    return _field_range(ProgramBase, field)


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
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
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
def init(ctx: Context) -> None:
    """Create the keys (never overwriting any) and bring the database schema up to date."""
    from app.migrations import upgrade
    from app.tokens.keys import init_keys

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

    settings = _served(ctx.settings, host, port)
    os.environ.setdefault("TREU_DATA_DIR", str(settings.data_dir))
    if settings.base_url.startswith("https://"):
        _warn_of_demo_logins(settings)
    run_server(create_app(settings, writer_process=True), host, port)


def _served(settings: Settings, host: str, port: int) -> Settings:
    """The settings as served on host:port: without a TREU_PUBLIC_URL, QR codes and printed
    URLs point to the port treu listens on (and to this machine when it listens on all)."""
    if "public_url" in settings.model_fields_set:
        return settings
    name = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    name = f"[{name}]" if ":" in name else name
    return settings.model_copy(update={"public_url": f"http://{name}:{port}"})


def _warn_of_demo_logins(settings: Settings) -> None:
    """A public treu with the demo's owners still on the published password: anyone can log in
    to those shops. Said on stderr, where a person starting treu looks, and in the log."""
    from app.demo import DEMO_PASSWORD, demo_logins_in_use

    emails = demo_logins_in_use(settings)
    if not emails:
        return
    rule = "!" * 78
    click.echo(
        f"{rule}\nWARNING: {settings.base_url} is public (https), and demo merchants log in with "
        f"the published password '{DEMO_PASSWORD}':\n  {', '.join(emails)}\n"
        'Use a database without the demo for real shops (README, "Your first real shop"), '
        "or give them new passwords: treu merchant password --merchant SLUG\n"
        f"{rule}",
        err=True,
    )
    logging.getLogger("treu").warning(
        "demo merchants with the published password on a public treu (%s): %s",
        settings.base_url, ", ".join(emails),
    )  # fmt: skip


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
def merchant_create(ctx: Context, /, **options: Any) -> None:
    """Create a merchant, its first program and the owner's login."""
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
def merchant_list(ctx: Context) -> None:
    """List the merchants."""
    from sqlmodel import col, select

    from app.merchants.models import Merchant

    with ctx.session() as session:
        rows = session.exec(select(Merchant).order_by(col(Merchant.id))).all()
        data = [{"id": m.id, "slug": m.slug, "name": m.name, "city": m.city} for m in rows]
    ctx.emit({"merchants": data}, "\n".join(f"{m['slug']}\t{m['name']}" for m in data))


@merchant.command("password")
@merchant_option
@click.option("--password", help="The new password (default: a new random one, shown once).")
@json_option
@pass_ctx
def merchant_password(ctx: Context, slug: str, password: str | None) -> None:
    """Give the owner a new password (a forgotten one); logs the owner out everywhere."""
    from sqlmodel import select

    from app.merchants.auth import end_other_sessions
    from app.merchants.models import Owner

    with ctx.shop(slug) as (session, m):
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


# --- the loyalty mechanics: programs, reward levels, tiers, promotions --------------------------


def _program_out(session: Session, program: Program) -> dict[str, Any]:
    """A program as the merchant's JSON API shows it (ProgramPublic)."""
    return loyalty.program_public(session=session, program=program).model_dump(mode="json")


def _program_line(p: dict[str, Any]) -> str:
    ladder = ", ".join(f"{lv['stamps']} → {lv['reward']}" for lv in p["levels"])
    expiry = f", stamps expire after {p['expire_months']} months away" if p["expire_months"] else ""
    return (
        f"{p['id']}\t{p['name']}: {p['stamps_required']} → {p['reward']}"
        f"{f' (also {ladder})' if ladder else ''}{expiry}\t{p['status']}"
    )


program_option = click.option("--program", "program_id", required=True, type=int)
level_option = click.option(
    "--level", "levels", multiple=True, metavar="STAMPS=TEXT",
    help="A lower reward on the way, e.g. '5=Small coffee' (repeatable).",
)  # fmt: skip


@cli.group()
def program() -> None:
    """A merchant's stamp programs and their reward levels."""


@program.command("create")
@merchant_option
@click.option("--name", required=True)
@click.option("--stamps-required", required=True, type=_program_range("stamps_required"))
@click.option("--reward", required=True)
@level_option
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
@click.option(
    "--expire-months", default=0, show_default=True, type=_program_range("expire_months"),
    help="Stamps expire after this many months without a visit (0: never).",
)  # fmt: skip
@json_option
@pass_ctx
def program_create(ctx: Context, /, slug: str, **options: Any) -> None:
    """Start another program at the shop (e.g. a lunch card beside the coffee card)."""
    levels = [loyalty.parse_level(text) for text in options["levels"]]
    with ctx.shop(slug) as (session, m):
        new = loyalty.create_program(
            session=session,
            merchant=m,
            now=utcnow(),
            name=options["name"],
            stamps_required=options["stamps_required"],
            reward_text=options["reward"],
            levels=levels,
            max_stamps_per_scan=options["max_stamps_per_scan"],
            cooldown_seconds=options["cooldown_seconds"],
            daily_cap=options["daily_cap"],
            expire_months=options["expire_months"],
        )
        shown = _program_out(session, new)
    ctx.emit({"program_id": new.id}, f"program created:\n{_program_line(shown)}")


@program.command("list")
@merchant_option
@json_option
@pass_ctx
def program_list(ctx: Context, slug: str) -> None:
    """The shop's programs, closed ones included, with their reward levels and status."""
    with ctx.shop(slug) as (session, m):
        data = [_program_out(session, p) for p in loyalty.programs(session=session, merchant=m)]
    ctx.emit(data, "\n".join(_program_line(p) for p in data))


@program.command("levels")
@merchant_option
@program_option
@level_option
@json_option
@pass_ctx
def program_levels(ctx: Context, slug: str, program_id: int, levels: tuple[str, ...]) -> None:
    """Replace a program's reward levels (none given: remove them)."""
    wanted = [loyalty.parse_level(text) for text in levels]
    with ctx.shop(slug) as (session, m):
        found = merchants.get_program(session=session, merchant=m, program_id=program_id)
        loyalty.set_levels(session=session, merchant=m, program=found, levels=wanted, now=utcnow())
        shown = _program_out(session, found)
    ctx.emit(shown, _program_line(shown))


def _program_change(action: str, help_text: str) -> None:
    """`treu program pause|resume|archive|close`: one change of a program's status."""

    @program.command(action, help=help_text)
    @merchant_option
    @program_option
    @json_option
    @pass_ctx
    def change(ctx: Context, slug: str, program_id: int) -> None:
        with ctx.shop(slug) as (session, m):
            found, booked_out = loyalty.change_program_state(
                session=session, merchant=m, program_id=program_id, action=action, now=utcnow()
            )
            shown = _program_out(session, found)
        text = _program_line(shown)
        if booked_out is not None:
            shown["cards_booked_out"] = booked_out
            text += f"\noutstanding stamps booked out on {booked_out} cards"
        ctx.emit(shown, text)


_program_change("pause", "Stop stamping in a program for now; its stamps stay redeemable.")
_program_change("resume", "Stamp in a paused program again.")
_program_change(
    "archive", "End a program: no more stamps; its history stays and its rewards stay redeemable."
)
_program_change(
    "close", "Close an archived program out: its outstanding stamps are booked out (expiry)."
)


def _tier_out(tier: Tier) -> dict[str, Any]:
    """A tier as the merchant's JSON API shows it (TierPublic)."""
    return loyalty.tier_public(tier).model_dump(mode="json")


@cli.group()
def tier() -> None:
    """Regulars' status by stamps collected at the shop."""


@tier.command("create")
@merchant_option
@click.option("--name", required=True)
@click.option("--lifetime-stamps", required=True, type=_field_range(Tier, "lifetime_stamps"))
@click.option(
    "--bonus-per-visit", default=0, show_default=True, type=_field_range(Tier, "bonus_per_visit"),
    help="Extra stamps on every visit of a card with this status.",
)  # fmt: skip
@click.option("--perk", default="", help="What the cashier gives, e.g. '10 % on cakes'.")
@json_option
@pass_ctx
def tier_create(ctx: Context, /, slug: str, **options: Any) -> None:
    """A status from a number of stamps collected at the shop, with its perk."""
    with ctx.shop(slug) as (session, m):
        new = loyalty.create_tier(
            session=session,
            merchant=m,
            now=utcnow(),
            name=options["name"],
            lifetime_stamps=options["lifetime_stamps"],
            bonus_per_visit=options["bonus_per_visit"],
            perk_text=options["perk"],
        )
    ctx.emit({"tier_id": new.id}, f"tier {new.id} created: {_tier_line(_tier_out(new))}")


def _tier_line(t: dict[str, Any]) -> str:
    perks = [f"+{t['bonus_per_visit']} per visit"] if t["bonus_per_visit"] else []
    perks += [t["perk"]] if t["perk"] else []
    return f"{t['name']} from {t['lifetime_stamps']} stamps" + (
        f" ({'; '.join(perks)})" if perks else ""
    )


@tier.command("list")
@merchant_option
@json_option
@pass_ctx
def tier_list(ctx: Context, slug: str) -> None:
    """The shop's tiers, lowest first, and when status lapses."""
    with ctx.shop(slug) as (session, m):
        data = [_tier_out(t) for t in loyalty.tiers(session=session, merchant=m)]
        months = m.tier_lapse_months
    lines = [f"{t['id']}\t{_tier_line(t)}" for t in data] or ["no tiers"]
    lines.append(_lapse_text(months))
    ctx.emit({"tiers": data, "lapse_months": months}, "\n".join(lines))


def _lapse_text(months: int) -> str:
    if not months:
        return "status never lapses"
    return f"status lapses after {months} months without a visit"


@tier.command("lapse")
@merchant_option
@click.option(
    "--months", required=True, type=_field_range(Merchant, "tier_lapse_months"),
    help="Status lapses after this many months without a visit (0: never).",
)  # fmt: skip
@json_option
@pass_ctx
def tier_lapse(ctx: Context, slug: str, months: int) -> None:
    """Whether and when a card's status lapses after months away."""
    with ctx.shop(slug) as (session, m):
        loyalty.set_tier_lapse(session=session, merchant=m, months=months)
    ctx.emit({"lapse_months": months}, _lapse_text(months))


@tier.command("delete")
@merchant_option
@click.option("--tier", "tier_id", required=True, type=int)
@json_option
@pass_ctx
def tier_delete(ctx: Context, slug: str, tier_id: int) -> None:
    """Remove a tier; cards keep their stamps, only the status and its perk go."""
    with ctx.shop(slug) as (session, m):
        loyalty.delete_tier(session=session, merchant=m, tier_id=tier_id)
    ctx.emit({"tier_id": tier_id, "deleted": True}, f"tier {tier_id} deleted")


def _promotion_out(
    session: Session, merchant: Merchant, promotion: Promotion, today: date
) -> dict[str, Any]:
    """A promotion as the merchant's JSON API shows it (PromotionPublic), with its summary in
    plain words."""
    program = None
    if promotion.program_id is not None:
        found = merchants.get_program(
            session=session, merchant=merchant, program_id=promotion.program_id
        )
        program = found.name
    summary = promotion_summary(promotion, today=today, program=program)
    shown = loyalty.promotion_public(promotion, today=today, summary=summary)
    return shown.model_dump(mode="json", by_alias=True)


def _promotion_line(p: dict[str, Any]) -> str:
    return f"{p['id']}\t{p['title']}: {p['summary']}\t{p['status']}"


@cli.group()
def promotion() -> None:
    """Bonus stamps the server adds at stamp time: happy hours, welcome, win-back, …"""


def _promotion_range(field: str) -> click.IntRange:
    return _field_range(Promotion, field)


DAY = click.DateTime(formats=["%Y-%m-%d"])


@promotion.command("create")
@merchant_option
@click.option("--kind", required=True, type=click.Choice(KINDS))
@click.option("--title", default="", help="What the till and the card page say (default: by kind).")
@click.option("--program", "program_id", type=int, help="Only this program (default: every one).")
@click.option(
    "--factor", type=_promotion_range("factor"), help="multiplier: F times the stamps [2]."
)
@click.option("--stamps", type=_promotion_range("stamps"), help="The others: bonus stamps [1].")
@click.option("--days", metavar="mon,tue,…", help="multiplier: on these weekdays [every day].")
@click.option("--from", "from_time", metavar="HH:MM", help="multiplier: from this time…")
@click.option("--to", "to_time", metavar="HH:MM", help="…until this one (shop time).")
@click.option("--away-days", type=_promotion_range("away_days"), help="winback: days away.")
@click.option("--starts", type=DAY, metavar="YYYY-MM-DD", help="First day (shop time).")
@click.option("--ends", type=DAY, metavar="YYYY-MM-DD", help="Last day.")
@click.option(
    "--budget", default=0, show_default=True, type=_promotion_range("budget"),
    help="Bonus stamps in total (0: no limit).",
)  # fmt: skip
@click.option(
    "--holdout-percent", default=0, show_default=True, type=_promotion_range("holdout_percent"),
    help="A fixed share of cards that gets no bonus, to see what the promotion changes.",
)  # fmt: skip
@json_option
@pass_ctx
def promotion_create(ctx: Context, /, slug: str, **options: Any) -> None:
    """Start a promotion; its bonuses are booked as their own ledger entries."""
    now = utcnow()
    days = options["days"]
    with ctx.shop(slug) as (session, m):
        # Without a title it is called by its kind, in the shop's language: customers read it.
        spec = loyalty.promotion_spec(
            kind=options["kind"],
            title=options["title"].strip() or default_title(options["kind"], m.locale),
            program_id=options["program_id"], factor=options["factor"],
            stamps=options["stamps"],
            days=None if days is None else [d for d in days.split(",") if d.strip()],
            from_time=options["from_time"], to_time=options["to_time"],
            away_days=options["away_days"],
            starts_on=options["starts"].date() if options["starts"] else None,
            ends_on=options["ends"].date() if options["ends"] else None,
            budget=options["budget"], holdout_percent=options["holdout_percent"],
        )  # fmt: skip
        new = loyalty.create_promotion(session=session, merchant=m, now=now, spec=spec)
        shown = _promotion_out(session, m, new, loyalty.local_today(m, now))
    ctx.emit({"promotion_id": new.id}, f"promotion created:\n{_promotion_line(shown)}")


@promotion.command("list")
@merchant_option
@json_option
@pass_ctx
def promotion_list(ctx: Context, slug: str) -> None:
    """The shop's promotions, running ones first."""
    with ctx.shop(slug) as (session, m):
        today = loyalty.local_today(m, utcnow())
        found = loyalty.promotions_by_state(session=session, merchant=m, today=today)
        data = [_promotion_out(session, m, p, today) for p, _ in found]
    ctx.emit(data, "\n".join(_promotion_line(p) for p in data) or "no promotions")


@promotion.command("end")
@merchant_option
@click.option("--promotion", "promotion_id", required=True, type=int)
@json_option
@pass_ctx
def promotion_end(ctx: Context, slug: str, promotion_id: int) -> None:
    """Stop a promotion now; the bonuses it gave stay."""
    now = utcnow()
    with ctx.shop(slug) as (session, m):
        ended = loyalty.end_promotion(
            session=session, merchant=m, promotion_id=promotion_id, now=now
        )
        shown = _promotion_out(session, m, ended, loyalty.local_today(m, now))
    ctx.emit(shown, _promotion_line(shown))


# What each of maintenance.run_once's counts is, in words: an expired card is not removed,
# the stamps on it are booked out.
_MAINTENANCE_WORDS = {
    "idle_cards": "idle cards removed",
    "login_counts": "login counts removed",
    "expired_cards": "cards whose stamps expired",
}


@cli.command("maintenance")
@json_option
@pass_ctx
def maintenance_round(ctx: Context) -> None:
    """One round of housekeeping (`treu serve` runs it hourly): idle cards, old login counts,
    expired stamps."""
    from app import maintenance

    engine = make_engine(ctx.settings.resolved_database_url)
    try:
        done = maintenance.run_once(engine, ctx.settings, utcnow())
    finally:
        engine.dispose()
    words = ", ".join(
        f"{_MAINTENANCE_WORDS.get(name, name.replace('_', ' '))}: {n}" for name, n in done.items()
    )
    ctx.emit(done, words)


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
@merchant_option
@click.option("--label", default="")
@json_option
@pass_ctx
def device_create(ctx: Context, slug: str, label: str) -> None:
    """Create a cashier device; its secret is shown once."""
    with ctx.shop(slug) as (session, m):
        dev, secret = merchants.create_device(
            session=session, merchant=m, now=utcnow(), label=label
        )
    ctx.emit(
        {"device_id": dev.id, "secret": secret},
        f"device {dev.id} ({dev.label}) created; its secret (shown once):\n{secret}",
    )


@device.command("list")
@merchant_option
@json_option
@pass_ctx
def device_list(ctx: Context, slug: str) -> None:
    """List a merchant's devices."""
    with ctx.shop(slug) as (session, m):
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
@merchant_option
@click.option("--device", "device_id", required=True, type=int)
@json_option
@pass_ctx
def device_revoke(ctx: Context, slug: str, device_id: int) -> None:
    """Revoke a device: it is refused from its next request on."""
    with ctx.shop(slug) as (session, m):
        dev = merchants.revoke_device(
            session=session, merchant=m, device_id=device_id, now=utcnow()
        )
    ctx.emit({"device_id": dev.id, "revoked_at": dev.revoked_at}, f"device {dev.id} revoked")


@device.command("pair")
@merchant_option
@click.option("--label", default="", help="Name of the new till, e.g. 'Counter'.")
@json_option
@pass_ctx
def device_pair(ctx: Context, slug: str, label: str) -> None:
    """Make a one-time pairing code: open its URL (or scan its QR) on the till's browser."""
    import io

    import qrcode

    from app.merchants.pairing import create_pairing_code, display_code

    with ctx.shop(slug) as (session, m):
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
def keys_rotate(ctx: Context) -> None:
    """Make a new signing key; the old one keeps verifying the cards it signed."""
    from app.tokens.keys import rotate_signing_key

    kid = rotate_signing_key(ctx.settings)
    ctx.emit({"kid": kid}, f"new signing key {kid}; restart treu to use it")


SERVED_HELP = "Where `treu serve` will listen: the printed URLs use it without TREU_PUBLIC_URL."


@cli.command()
@click.option("--cards", default=400, show_default=True, type=click.IntRange(1))
@click.option("--months", default=4, show_default=True, type=click.IntRange(1, 120))
@click.option("--visits", default=4000, show_default=True, type=click.IntRange(0))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option(
    "--if-empty", is_flag=True,
    help="If there are merchants already, write nothing and print the first run's logins.",
)  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help=SERVED_HELP)
@click.option("--port", default=8000, show_default=True, type=int, help=SERVED_HELP)
@json_option
@pass_ctx
def demo(
    ctx: Context, /, cards: int, months: int, visits: int, seed: int, if_empty: bool, host: str,
    port: int,
) -> None:  # fmt: skip
    """Seed demo merchants, devices and months of history; print logins and a demo card."""
    from app import demo as demo_data

    result = demo_data.seed(
        _served(ctx.settings, host, port), cards=cards, months=months, visits=visits, seed=seed,
        if_empty=if_empty,
    )  # fmt: skip
    ctx.emit(result, demo_data.describe(result))


@cli.group()
def cards() -> None:
    """Anonymous cards."""


@cards.command("print")
@merchant_option
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
