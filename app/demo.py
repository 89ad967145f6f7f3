"""Demo data: merchants, devices and months of history with weekly and daily rhythms.

History is written in bulk, in chunks of a few thousand rows per transaction: the same rows the
ledger writer would write, balances equal to the sum of their entries. A million entries take a
few minutes and little memory.
"""

import json
import math
import os
import random
from bisect import bisect
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.config import Settings
from app.db import make_engine, write_engine
from app.errors import AppError
from app.feedback.demo import seed_demo_feedback
from app.ledger import service as ledger
from app.ledger.models import new_entry_id
from app.ledger.projections import rebuild_rollups
from app.merchants import service as merchants
from app.merchants.models import Merchant
from app.tokens import crypto
from app.tokens.cards import import_cards
from app.tokens.keys import load_keyring

DEMO_MERCHANTS = (
    {"name": "Café Sonne", "slug": "cafe-sonne", "city": "Wien", "category": "Café",
     "stamps_required": 10, "reward": "1 free coffee", "weight": 0.5, "stamps": (1, 1, 1, 2)},
    {"name": "Bäckerei Gruber", "slug": "baeckerei-gruber", "city": "Wien", "category": "Bakery",
     "stamps_required": 8, "reward": "1 loaf of bread", "weight": 0.35, "stamps": (1,)},
    {"name": "Salon Haarmonie", "slug": "salon-haarmonie", "city": "Wien",
     "category": "Hairdresser", "stamps_required": 5, "reward": "free haircut", "weight": 0.15,
     "stamps": (1,)},
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
    return settings.data_dir / "demo.json"


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
                    return load_demo(settings) or {"skipped": True, "merchants": []}
                slugs = [str(m["slug"]) for m in DEMO_MERCHANTS]
                if session.exec(select(Merchant.id).where(col(Merchant.slug).in_(slugs))).first():
                    raise DemoExists(
                        "The demo merchants exist already (`treu demo --if-empty` shows them)."
                    )
            created = _create_merchants(session, now)
            session.commit()
        history = History(keyring, created, random.Random(seed), months, now)
        demo_card = history.write(engine, n_cards=cards, n_visits=visits)
        # The dashboard reads rollups, never the ledger: roll up the history written in bulk.
        with engine.begin() as conn:
            for m in created:
                rebuild_rollups(conn, merchant_id=m["merchant_id"])
                # Some recent visitors left feedback, so the inbox and its figures show something.
                seed_demo_feedback(
                    conn, merchant_id=m["merchant_id"], rng=random.Random(seed), now=now
                )
    finally:
        engine.dispose()
    hidden = ("merchant_id", "program_id", "device_ids", "required", "weight", "stamps")
    result: dict[str, Any] = {
        "merchants": [{k: v for k, v in m.items() if k not in hidden} for m in created],
        "demo_card": {"token": demo_card, "card_url": f"{settings.base_url}/c/{demo_card}"},
        "public_url": settings.base_url,
    }
    path = demo_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    # It holds device secrets: readable by treu's user only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)
    return result


def load_demo(settings: Settings) -> dict[str, Any] | None:
    """The logins, secrets and demo card of the first run, with URLs under today's public URL."""
    path = demo_file(settings)
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    data["public_url"] = settings.base_url
    if "demo_card" in data:
        token = data["demo_card"]["token"]
        data["demo_card"]["card_url"] = f"{settings.base_url}/c/{token}"
    return data


def describe(result: dict[str, Any]) -> str:
    """What `treu demo` and `make run` print: where to go, the demo logins and a demo card."""
    if not result.get("merchants"):
        return "the database has merchants already: no demo data written"
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
    card = result.get("demo_card", {})
    if card:
        lines += ["", f"  demo card: {card['card_url']}"]
    return "\n".join(lines)


def _create_merchants(session: Session, now: datetime) -> list[dict[str, Any]]:
    created = []
    for spec in DEMO_MERCHANTS:
        new = merchants.create_merchant(
            session=session,
            name=str(spec["name"]),
            slug=str(spec["slug"]),
            city=str(spec["city"]),
            category=str(spec["category"]),
            stamps_required=int(spec["stamps_required"]),  # type: ignore[call-overload]
            reward=str(spec["reward"]),
            review_url="https://search.google.com/local/writereview?placeid=demo",
            owner_email=f"owner@{spec['slug']}.example",
            owner_password=DEMO_PASSWORD,
            now=now,
        )
        devices = [
            merchants.create_device(session=session, merchant=new.merchant, now=now, label=label)
            for label in ("Counter", "Terrace")
        ]
        created.append(
            {
                "name": new.merchant.name,
                "slug": new.merchant.slug,
                "merchant_id": new.merchant.id,
                "program_id": new.program.id,
                "required": new.program.stamps_required,
                "owner_email": new.owner_email,
                "owner_password": new.owner_password,
                "device_id": devices[0][0].id,
                "device_secret": devices[0][1],
                "device_ids": [d.id for d, _ in devices],
                "weight": spec["weight"],
                "stamps": spec["stamps"],
            }
        )
    return created


@dataclass
class _Balance:
    merchant: dict[str, Any]
    holder: str
    first: datetime
    last: datetime
    stamps: int = 0
    lifetime: int = 0
    redeemed: int = 0
    visits: int = 0


@dataclass
class History:
    """Cards and their visits: a few regulars, many occasional customers, new ones every month."""

    keyring: crypto.Keyring
    created: list[dict[str, Any]]
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
        # A card's share of the visits is log-normal: a few regulars, a long tail.
        weights = [math.exp(self.rng.gauss(0, 1.1)) for _ in card_ids]
        weights[0] = max(weights[0], 3.0)
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
        shares = [m["weight"] for m in self.created]
        homes = [0, 0] if demo else self.rng.choices(range(len(self.created)), shares, k=2)
        # A card starts some time in the period: cohorts of new customers every month.
        first_day = self._day(0)
        first = self._visit_time(first_day)
        planned = [first] + [self._visit_time(self._day(first_day)) for _ in range(count - 1)]
        # A visit planned for later today is made a week earlier: the same weekday and opening
        # hour, never at the hour the demo happens to run (at night, say).
        latest = self.now - timedelta(minutes=5)
        times = sorted(t if t <= latest else t - timedelta(days=7) for t in planned)
        state: dict[int, _Balance] = {}
        for at in times:
            m = self.created[homes[0] if self.rng.random() < 0.8 else homes[1]]
            self._visit(card_id, m, at, state)
        for b in state.values():
            self.rows["balance"].append(
                {"merchant_id": b.merchant["merchant_id"], "program_id": b.merchant["program_id"],
                 "holder": b.holder, "stamps": b.stamps, "lifetime_stamps": b.lifetime,
                 "redeemed": b.redeemed, "visits": b.visits, "first_visit_at": b.first,
                 "last_visit_at": b.last, "last_stamp_at": b.last, "stamp_day": b.last.date(),
                 "day_stamps": 0}
            )  # fmt: skip
        self.rows["card"].append(
            {"ref": crypto.card_ref(self.keyring, card_id), "created_day": times[0].date(),
             "last_seen_day": times[-1].date(), "deleted_day": None,
             "sealed_wallet": crypto.seal_wallet(self.keyring, card_id, sorted(state))}
        )  # fmt: skip

    def _visit(
        self, card_id: bytes, m: dict[str, Any], at: datetime, state: dict[int, _Balance]
    ) -> None:
        b = state.get(m["merchant_id"])
        if b is None:
            holder = crypto.holder_for(self.keyring, card_id, m["merchant_id"])
            b = state[m["merchant_id"]] = _Balance(m, holder, at, at)
        n = self.rng.choice(m["stamps"])
        device = self.rng.choice(m["device_ids"])
        self._entry(b, "stamp", n, device, at)
        b.stamps += n
        b.lifetime += n
        b.visits += 1
        b.last = at
        if b.stamps >= m["required"] and self.rng.random() < 0.7:
            self._entry(b, "redemption", -m["required"], device, at + timedelta(seconds=30))
            b.stamps -= m["required"]
            b.redeemed += 1

    def _entry(self, b: _Balance, kind: str, delta: int, device: int, at: datetime) -> None:
        self.rows["ledger_entry"].append(
            {"id": new_entry_id(at, self.rng.randbytes(12)),
             "merchant_id": b.merchant["merchant_id"],
             "program_id": b.merchant["program_id"], "holder": b.holder, "kind": kind,
             "delta": delta, "device_id": device, "idempotency_key": None,
             "voids_entry_id": None, "created_at": at}
        )  # fmt: skip

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
