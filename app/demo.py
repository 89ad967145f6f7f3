"""Demo data: merchants, devices, their loyalty levers and months of history with weekly and
daily rhythms.

History is written in bulk, in chunks of a few thousand rows per transaction: the same rows the
ledger writer would write, balances equal to the sum of their entries. A million entries take a
few minutes and little memory.
"""

import hashlib
import json
import math
import os
import random
from bisect import bisect
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.config import Settings
from app.db import make_engine, write_engine
from app.errors import AppError
from app.feedback.demo import seed_demo_feedback
from app.ledger import service as ledger
from app.ledger.models import new_entry_id
from app.ledger.projections import rebuild_rollups
from app.loyalty import rules
from app.loyalty import service as loyalty
from app.loyalty.models import Promotion, Tier
from app.loyalty.rules import weekday_mask
from app.loyalty.service import PromotionSpec
from app.merchants import service as merchants
from app.merchants.models import Merchant, Owner, Program
from app.tokens import crypto
from app.tokens.cards import import_cards
from app.tokens.keys import load_keyring


@dataclass(frozen=True)
class DemoProgram:
    name: str
    stamps_required: int
    reward: str
    stamps: tuple[int, ...] = (1,)  # what a visit gets, drawn at random
    levels: tuple[tuple[int, str], ...] = ()
    expire_months: int = 0
    # A visit in these local hours is for this program with this chance (the first program of
    # a shop takes every other visit).
    hours: range = range(0)
    share: float = 0.0


@dataclass(frozen=True)
class DemoTier:
    name: str
    lifetime_stamps: int
    bonus_per_visit: int
    perk_text: str


@dataclass(frozen=True)
class DemoShop:
    name: str
    slug: str
    city: str
    category: str
    weight: float  # share of the visits
    programs: tuple[DemoProgram, ...]
    tiers: tuple[DemoTier, ...] = ()
    promotions: tuple[PromotionSpec, ...] = ()


TUE_TO_THU = weekday_mask(("tue", "wed", "thu"))
DEMO_MERCHANTS = (
    DemoShop(
        "Café Sonne", "cafe-sonne", "Wien", "Café", 0.5,
        programs=(
            DemoProgram("Kaffee", 10, "1 Kaffee gratis", stamps=(1, 1, 1, 2),
                        levels=((5, "1 kleiner Kaffee"),), expire_months=12),
            DemoProgram("Mittagsmenü", 6, "1 Dessert gratis", hours=range(11, 14), share=0.6),
        ),
        tiers=(DemoTier("Stammgast", 30, 1, "10 % auf Kuchen"),),
        promotions=(
            PromotionSpec(kind="multiplier", title="Happy Hour", factor=2, weekdays=TUE_TO_THU,
                          from_minute=14 * 60, to_minute=16 * 60),
            PromotionSpec(kind="welcome", title="Willkommen", stamps=1),
            # A trial with a hold-out, over and done two weeks ago (_levers dates it): the
            # dashboard's "did the promotion work?" compares, and today's stamps get no +1.
            PromotionSpec(kind="campaign", title="Treue-Test", stamps=1, holdout_percent=30),
        ),
    ),
    DemoShop(
        "Bäckerei Gruber", "baeckerei-gruber", "Wien", "Bakery", 0.35,
        programs=(DemoProgram("Brot", 8, "1 Laib Brot", levels=((4, "1 Kipferl"),)),),
        promotions=(
            PromotionSpec(kind="winback", title="Schön, dass Sie wieder da sind", stamps=2,
                          away_days=21, holdout_percent=10),
        ),
    ),
    DemoShop(
        "Salon Haarmonie", "salon-haarmonie", "Wien", "Hairdresser", 0.15,
        programs=(DemoProgram("Haarschnitt", 5, "1 Haarschnitt gratis"),),
        promotions=(PromotionSpec(kind="anniversary", title="Ein Jahr bei uns", stamps=2),),
    ),
)  # fmt: skip
# Share of visits by weekday (Mon..Sun) and by local hour of day.
WEEKDAY_WEIGHTS = (1.0, 1.0, 1.05, 1.1, 1.3, 1.5, 0.6)
HOUR_WEIGHTS = {7: 3, 8: 6, 9: 5, 10: 3, 11: 3, 12: 5, 13: 4, 14: 2, 15: 3, 16: 4, 17: 3, 18: 1}
HOURS, HOUR_CUM = list(HOUR_WEIGHTS), list(accumulate(HOUR_WEIGHTS.values()))
ZONE = ZoneInfo("Europe/Vienna")
DEMO_PASSWORD = "treu-demo"
# Rows per INSERT and per transaction: memory and the SQLite WAL stay small however big the demo.
CHUNK = 10_000


class DemoExists(AppError):
    status = 409
    title = "Demo data exists"


def demo_file(settings: Settings) -> Path:
    """Where the first run's logins for this database are kept: one file per database, so a
    second database in the same data dir never shows (or overwrites) another's secrets."""
    return settings.data_dir / f"demo-{database_key(settings.resolved_database_url)}.json"


def database_key(url: str) -> str:
    """A short name for a database: a hash of its SQLite file's full path, or of its server URL
    without the password (a changed password is still the same database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        name = f"sqlite:{Path(str(parsed.database)).resolve()}"
    else:
        name = parsed.set(password=None).render_as_string(hide_password=False)
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def seed(
    settings: Settings, *, cards: int, months: int, visits: int, seed: int, if_empty: bool
) -> dict[str, Any]:
    """Create the demo merchants and history; return logins, device secrets and a demo card.

    With if_empty, a database that has merchants already is left alone and the demo data of
    the first run (kept in the data dir) is returned.
    """
    engine = write_engine(make_engine(settings.resolved_database_url))
    keyring = load_keyring(settings)
    now = utcnow()
    try:
        with Session(engine, expire_on_commit=False) as session:
            if session.exec(select(Merchant.id)).first() is not None:
                if if_empty:
                    return load_demo(settings, session) or {"skipped": True, "merchants": []}
                slugs = [shop.slug for shop in DEMO_MERCHANTS]
                if session.exec(select(Merchant.id).where(col(Merchant.slug).in_(slugs))).first():
                    raise DemoExists(
                        "The demo merchants exist already (`treu demo --if-empty` shows them)."
                    )
            # The programs, tiers and promotions date from the start of the history they shape.
            since = now - timedelta(days=max(months * 30, 1) + 1)
            created, shops = _create_merchants(session, now, since)
            session.commit()
        history = History(keyring, shops, random.Random(seed), months, now)
        demo_card = history.write(engine, n_cards=cards, n_visits=visits)
        # The dashboard reads rollups, never the ledger: roll up the history written in bulk.
        with engine.begin() as conn:
            for shop in shops:
                rebuild_rollups(conn, merchant_id=shop.merchant_id)
                # Some recent visitors left feedback, so the inbox and its figures show something.
                seed_demo_feedback(
                    conn, merchant_id=shop.merchant_id, rng=random.Random(seed), now=now
                )
    finally:
        engine.dispose()
    result: dict[str, Any] = {
        "merchants": created,
        "demo_card": {"token": demo_card, "card_url": f"{settings.base_url}/c/{demo_card}"},
        "public_url": settings.base_url,
    }
    _keep(demo_file(settings), result)
    return result


def _keep(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # It holds device secrets: readable by treu's user only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)


def load_demo(settings: Settings, session: Session) -> dict[str, Any] | None:
    """The logins, secrets and demo card of this database's first run, with URLs under today's
    public URL; None when they are not known here or this database does not take them."""
    path = demo_file(settings)
    # An older treu kept one demo.json per data dir, whichever database it was for.
    legacy = settings.data_dir / "demo.json"
    kept = path if path.exists() else legacy if legacy.exists() else None
    if kept is None:
        return None
    data: dict[str, Any] = json.loads(kept.read_text())
    # A database made again under the same URL (or another one, for the old file) has other
    # secrets: print none that this database would refuse.
    if not _secrets_work(session, data):
        return None
    if kept == legacy:
        _keep(path, data)
    data["public_url"] = settings.base_url
    if "demo_card" in data:
        token = data["demo_card"]["token"]
        data["demo_card"]["card_url"] = f"{settings.base_url}/c/{token}"
    return data


def _secrets_work(session: Session, data: dict[str, Any]) -> bool:
    secrets = [m.get("device_secret", "") for m in data.get("merchants", [])]
    return bool(secrets) and all(
        merchants.find_device(session=session, secret=secret) is not None for secret in secrets
    )


def demo_logins_in_use(settings: Settings) -> list[str]:
    """The demo owners' e-mail addresses that still log in with the published demo password."""
    emails = [f"owner@{shop.slug}.example" for shop in DEMO_MERCHANTS]
    engine = make_engine(settings.resolved_database_url)
    try:
        with Session(engine) as session:
            owners = session.exec(select(Owner).where(col(Owner.email).in_(emails))).all()
            return sorted(
                o.email for o in owners if merchants.verify_password(o.password_hash, DEMO_PASSWORD)
            )
    finally:
        engine.dispose()


def describe(result: dict[str, Any]) -> str:
    """What `treu demo` and `make run` print: where to go, the demo logins and a demo card."""
    if not result.get("merchants"):
        return (
            "the database has merchants already: no demo data written (and no demo logins for "
            "this database are kept in the data dir)"
        )
    base = result.get("public_url", "http://127.0.0.1:8000")
    lines = [
        f"treu: {base}   API docs: {base}/docs   health: {base}/healthz",
        f"merchant area: {base}/merchant/login   till: {base}/till",
        "",
    ]
    for m in result["merchants"]:
        lines += [
            f"  {m['name']} ({m['slug']})",
            f"    poster page:   {base}/m/{m['slug']}",
            f"    owner login:   {m['owner_email']} / {m['owner_password']}",
            f"    device secret: {m['device_secret']}",
        ]
        # A demo.json of an older treu has no levers.
        if m.get("programs"):
            lines.append(f"    programs:      {'; '.join(m['programs'])}")
        if m.get("levers"):
            lines.append(f"    also:          {'; '.join(m['levers'])}")
    card = result.get("demo_card", {})
    if card:
        lines += ["", f"  demo card: {card['card_url']}"]
    return "\n".join(lines)


@dataclass
class ShopProgram:
    """A demo program as the history needs it."""

    id: int
    spec: DemoProgram
    levels: list[tuple[int, int]]  # (reward level id, its stamps), fewest stamps first


@dataclass
class Shop:
    """A demo merchant as the history needs it: its programs, devices and levers."""

    merchant_id: int
    weight: float
    device_ids: list[int]
    programs: list[ShopProgram]
    promotions: list[Promotion]
    tiers: list[Tier]


def _create_merchants(
    session: Session, now: datetime, since: datetime
) -> tuple[list[dict[str, Any]], list[Shop]]:
    """The demo merchants as `treu demo` prints them, and as the history needs them."""
    created, shops = [], []
    for spec in DEMO_MERCHANTS:
        main = spec.programs[0]
        new = merchants.create_merchant(
            session=session, name=spec.name, slug=spec.slug, city=spec.city,
            category=spec.category, stamps_required=main.stamps_required, reward=main.reward,
            review_url="https://search.google.com/local/writereview?placeid=demo",
            owner_email=f"owner@{spec.slug}.example", owner_password=DEMO_PASSWORD, now=now,
        )  # fmt: skip
        merchant = new.merchant
        devices = [
            merchants.create_device(session=session, merchant=merchant, now=now, label=label)
            for label in ("Counter", "Terrace")
        ]
        programs = [_first_program(session, merchant, new.program, main, since)]
        for extra in spec.programs[1:]:
            made = loyalty.create_program(
                session=session, merchant=merchant, now=since, name=extra.name,
                stamps_required=extra.stamps_required, reward_text=extra.reward,
                levels=extra.levels, expire_months=extra.expire_months,
            )  # fmt: skip
            programs.append(_shop_program(session, made, extra))
        promotions, tiers = _levers(session, merchant, spec, since, now)
        assert merchant.id is not None
        shops.append(
            Shop(merchant.id, spec.weight, [int(d.id or 0) for d, _ in devices], programs,
                 promotions, tiers)
        )  # fmt: skip
        created.append(
            {
                "name": merchant.name,
                "slug": merchant.slug,
                "owner_email": new.owner_email,
                "owner_password": new.owner_password,
                "device_id": devices[0][0].id,
                "device_secret": devices[0][1],
                "programs": [_program_words(p) for p in spec.programs],
                "levers": [f"tier {t.name} from {t.lifetime_stamps} stamps" for t in spec.tiers]
                + [f"{p.kind} promotion {p.title}" for p in spec.promotions],
            }
        )
    return created, shops


# The demo's campaign trial ends this long before today.
TRIAL_OVER = timedelta(days=14)


def _levers(
    session: Session, merchant: Merchant, spec: DemoShop, since: datetime, now: datetime
) -> tuple[list[Promotion], list[Tier]]:
    """The shop's promotions and tiers, running since the history's start (a campaign until
    two weeks before today)."""
    over = max(since, now - TRIAL_OVER).date()
    dated = [
        replace(p, starts_on=since.date(), ends_on=over) if p.kind == "campaign" else p
        for p in spec.promotions
    ]
    promotions = [
        loyalty.create_promotion(session=session, merchant=merchant, now=since, spec=p)
        for p in dated
    ]
    tiers = [
        loyalty.create_tier(
            session=session,
            merchant=merchant,
            now=since,
            name=t.name,
            lifetime_stamps=t.lifetime_stamps,
            bonus_per_visit=t.bonus_per_visit,
            perk_text=t.perk_text,
        )
        for t in spec.tiers
    ]
    return promotions, tiers


def _first_program(
    session: Session, merchant: Merchant, program: Program, spec: DemoProgram, since: datetime
) -> ShopProgram:
    """The program create_merchant made, named, given its reward levels and expiry, and dated
    from the history's start like the shop's other programs."""
    assert program.id is not None
    loyalty.change_program(
        session=session, merchant=merchant, program_id=program.id, now=since, name=spec.name,
        stamps_required=program.stamps_required, reward_text=program.reward_text,
        max_stamps_per_scan=program.max_stamps_per_scan,
        cooldown_seconds=program.cooldown_seconds, daily_cap=program.daily_cap,
        expire_months=spec.expire_months, levels=spec.levels,
    )  # fmt: skip
    program.created_at = since
    return _shop_program(session, program, spec)


def _shop_program(session: Session, program: Program, spec: DemoProgram) -> ShopProgram:
    assert program.id is not None
    levels = loyalty.levels_of(session=session, program=program)
    return ShopProgram(program.id, spec, [(int(lv.id or 0), lv.stamps) for lv in levels])


def _program_words(spec: DemoProgram) -> str:
    ladder = "".join(f", {stamps} → {reward}" for stamps, reward in spec.levels)
    return f"{spec.name}: {spec.stamps_required} → {spec.reward}{ladder}"


@dataclass
class _Balance:
    """A card's balance row in one program, as the ledger writer would have left it."""

    merchant_id: int
    program_id: int
    holder: str
    first: datetime
    last: datetime
    last_stamp: datetime
    previous: datetime | None = None
    stamps: int = 0
    lifetime: int = 0
    status: int = 0
    redeemed: int = 0
    visits: int = 0
    day_stamps: int = 0

    def row(self) -> dict[str, Any]:
        return {
            "merchant_id": self.merchant_id, "program_id": self.program_id,
            "holder": self.holder, "stamps": self.stamps, "lifetime_stamps": self.lifetime,
            "redeemed": self.redeemed, "visits": self.visits, "first_visit_at": self.first,
            "last_visit_at": self.last, "last_stamp_at": self.last_stamp,
            "stamp_day": self.last_stamp.date(), "day_stamps": self.day_stamps,
            "previous_visit_at": self.previous, "status_stamps": self.status,
        }  # fmt: skip

    def earn(self, n: int) -> None:
        self.stamps += n
        self.lifetime += n
        self.status += n


@dataclass
class History:
    """Cards and their visits: a few regulars, many occasional customers, new ones every month.

    Every visit is booked as the ledger writer books a stamp: the shop's promotions and tiers
    decide its bonuses (app.loyalty.rules, from the card's balance rows at the shop), stamps
    left idle past a program's expiry are booked out, and due rewards are sometimes redeemed.
    """

    keyring: crypto.Keyring
    shops: list[Shop]
    rng: random.Random
    months: int
    now: datetime
    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"ledger_entry": [], "balance": [], "card": []}
    )
    days: list[date] = field(init=False)
    day_cum: list[float] = field(init=False)

    def __post_init__(self) -> None:
        # The period's local days, oldest first, with cumulative weekday weights to draw from.
        today = self.now.astimezone(ZONE).date()
        n = max(self.months * 30, 1)
        self.days = [today - timedelta(days=n - k) for k in range(n + 1)]
        self.day_cum = list(accumulate(WEEKDAY_WEIGHTS[d.weekday()] for d in self.days))

    def write(self, engine: Engine, *, n_cards: int, n_visits: int) -> str:
        """Write the history; return the token of the demo card (a regular at the first shop)."""
        card_ids = [self.rng.randbytes(16) for _ in range(max(n_cards, 1))]
        # A card's share of the visits is log-normal: a few regulars, a long tail. The demo
        # card is a regular, with the first shop's status.
        weights = [math.exp(self.rng.gauss(0, 1.1)) for _ in card_ids]
        weights[0] = max(weights[0], 6.0)
        total = sum(weights)
        for index, card_id in enumerate(card_ids):
            count = max(1, round(n_visits * weights[index] / total))
            self._card(card_id, count, demo=index == 0)
            full = [name for name, rows in self.rows.items() if len(rows) >= CHUNK]
            if full:
                self._flush(engine, full)
        self._flush(engine, list(self.rows))
        return crypto.sign_card(self.keyring, card_ids[0])

    def _flush(self, engine: Engine, names: list[str]) -> None:
        # Cards before balances before ledger entries: a crash leaves no entry without a card.
        with engine.begin() as conn:
            import_cards(conn, self._take("card", names))
            ledger.import_history(
                conn,
                balances=self._take("balance", names),
                entries=self._take("ledger_entry", names),
            )

    def _take(self, name: str, names: list[str]) -> list[dict[str, Any]]:
        if name not in names:
            return []
        rows, self.rows[name] = self.rows[name], []
        return rows

    def _card(self, card_id: bytes, count: int, *, demo: bool) -> None:
        # A home shop and, for some visits, a second one; the demo card is a regular of the first.
        shares = [shop.weight for shop in self.shops]
        homes = [0, 0] if demo else self.rng.choices(range(len(self.shops)), shares, k=2)
        # A card starts some time in the period: cohorts of new customers every month.
        first_day = self._day(0)
        first = self._visit_time(first_day)
        planned = [first] + [self._visit_time(self._day(first_day)) for _ in range(count - 1)]
        # A visit planned for later today is made a week earlier: the same weekday and opening
        # hour, never at the hour the demo happens to run (at night, say).
        latest = self.now - timedelta(minutes=5)
        times = sorted(t if t <= latest else t - timedelta(days=7) for t in planned)
        state: dict[tuple[int, int], _Balance] = {}
        holders: dict[int, str] = {}
        for at in times:
            shop = self.shops[homes[0] if self.rng.random() < 0.8 else homes[1]]
            if shop.merchant_id not in holders:
                holders[shop.merchant_id] = crypto.holder_for(
                    self.keyring, card_id, shop.merchant_id
                )
            self._visit(shop, holders[shop.merchant_id], at, state)
        self.rows["balance"] += [b.row() for b in state.values()]
        self.rows["card"].append(
            {"ref": crypto.card_ref(self.keyring, card_id), "created_day": times[0].date(),
             "last_seen_day": times[-1].date(), "deleted_day": None,
             "sealed_wallet": crypto.seal_wallet(self.keyring, card_id, sorted(holders))}
        )  # fmt: skip

    def _visit(
        self, shop: Shop, holder: str, at: datetime, state: dict[tuple[int, int], _Balance]
    ) -> None:
        program = self._program(shop, at)
        # The card at the whole shop before this visit, as the ledger writer reads it.
        here = [b for (merchant_id, _), b in state.items() if merchant_id == shop.merchant_id]
        visit = rules.Visit(
            at=at.astimezone(ZONE), count=0, first_here=not here,
            first_visit_at=min((b.first for b in here), default=at),
            previous_visit_at=max((b.last for b in here), default=None),
            status_stamps=sum(b.status for b in here),
        )  # fmt: skip
        b = state.get((shop.merchant_id, program.id))
        if b is None:
            b = state[(shop.merchant_id, program.id)] = _Balance(
                shop.merchant_id, program.id, holder, first=at, last=at, last_stamp=at
            )
        # Stamps idle past the program's expiry go when the card comes back.
        months = program.spec.expire_months
        idle = b.visits > 0 and months > 0 and b.last < ledger.months_before(at, months)
        expired = b.stamps if idle else 0
        n = self.rng.choice(program.spec.stamps)
        device = self.rng.choice(shop.device_ids)
        stamp_id = self._entry(b, "stamp", n, device, at)
        b.previous = b.last if b.visits else None
        same_day = b.visits > 0 and b.last_stamp.date() == at.date()
        b.day_stamps = b.day_stamps + n if same_day else n
        b.earn(n)
        b.visits += 1
        b.last = b.last_stamp = at
        for _, bonus in rules.bonuses(
            promotions=shop.promotions, tiers=shop.tiers,
            visit=replace(visit, count=n), holder=holder, program_id=program.id,
        ):  # fmt: skip
            self._entry(b, "bonus", bonus.stamps, device, at, for_entry_id=stamp_id,
                        promotion_id=bonus.promotion_id)  # fmt: skip
            b.earn(bonus.stamps)
        if expired:
            self._entry(b, "expiry", -expired, device, at)
            b.stamps -= expired
        self._redeem(b, program, device, at + timedelta(seconds=30))

    def _program(self, shop: Shop, at: datetime) -> ShopProgram:
        """The program a visit is for: the lunch card at lunchtime, mostly."""
        hour = at.astimezone(ZONE).hour
        for program in shop.programs[1:]:
            if hour in program.spec.hours and self.rng.random() < program.spec.share:
                return program
        return shop.programs[0]

    def _redeem(self, b: _Balance, program: ShopProgram, device: int, at: datetime) -> None:
        """Most due main rewards are redeemed at once; now and then a lower level instead."""
        required, reward_id = program.spec.stamps_required, None
        if b.stamps < required or self.rng.random() >= 0.7:
            due = [level for level in program.levels if b.stamps >= level[1]]
            if not due or self.rng.random() >= 0.1:
                return
            reward_id, required = due[-1]
        self._entry(b, "redemption", -required, device, at, reward_id=reward_id)
        b.stamps -= required
        b.redeemed += 1
        b.last = at  # a redemption is a visit too

    def _entry(
        self, b: _Balance, kind: str, delta: int, device: int, at: datetime, **parts: Any
    ) -> str:
        entry_id = new_entry_id(at, self.rng.randbytes(12))
        self.rows["ledger_entry"].append(
            {"id": entry_id, "merchant_id": b.merchant_id, "program_id": b.program_id,
             "holder": b.holder, "kind": kind, "delta": delta, "device_id": device,
             "idempotency_key": None, "voids_entry_id": None, "created_at": at,
             "for_entry_id": None, "promotion_id": None, "reward_id": None, **parts}
        )  # fmt: skip
        return entry_id

    def _day(self, since: int) -> int:
        """A day of the period from index since on, busier days more likely."""
        low = self.day_cum[since - 1] if since else 0.0
        u = self.rng.uniform(low, self.day_cum[-1])
        return min(bisect(self.day_cum, u), len(self.days) - 1)

    def _visit_time(self, day: int) -> datetime:
        """A time in opening hours on that local day, in UTC."""
        hour = HOURS[bisect(HOUR_CUM, self.rng.random() * HOUR_CUM[-1])]
        minute, second = divmod(self.rng.randrange(3600), 60)
        local = datetime.combine(self.days[day], time(hour, minute, second), ZONE)
        return local.astimezone(UTC)
