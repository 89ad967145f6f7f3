"""Demo data: merchants, devices and months of history with weekly and daily rhythms.

History is written in bulk (the same rows the ledger writer would write, balances equal to the
sum of their entries), so a million entries take a few minutes, not hours.
"""

import json
import math
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert
from sqlmodel import Session, select

from app.analytics.service import rebuild_rollups
from app.clock import utcnow
from app.config import Settings
from app.db import make_engine, write_engine
from app.ledger.models import Balance, LedgerEntry
from app.merchants import service as merchants
from app.merchants.models import Merchant
from app.tokens import crypto
from app.tokens.keys import load_keyring
from app.tokens.models import Card

DEMO_MERCHANTS = (
    {"name": "Café Sonne", "slug": "cafe-sonne", "city": "Wien", "category": "Café",
     "stamps_required": 10, "reward": "1 free coffee", "weight": 0.5, "stamps": (1, 1, 1, 2)},
    {"name": "Bäckerei Gruber", "slug": "baeckerei-gruber", "city": "Wien", "category": "Bakery",
     "stamps_required": 8, "reward": "1 loaf of bread", "weight": 0.35, "stamps": (1,)},
    {"name": "Salon Haarmonie", "slug": "salon-haarmonie", "city": "Wien",
     "category": "Hairdresser", "stamps_required": 5, "reward": "free haircut", "weight": 0.15,
     "stamps": (1,)},
)  # fmt: skip
# Share of visits by weekday (Mon..Sun) and by hour of day.
WEEKDAY_WEIGHTS = (1.0, 1.0, 1.05, 1.1, 1.3, 1.5, 0.6)
HOUR_WEIGHTS = {7: 3, 8: 6, 9: 5, 10: 3, 11: 3, 12: 5, 13: 4, 14: 2, 15: 3, 16: 4, 17: 3, 18: 1}
DEMO_PASSWORD = "treu-demo"
BATCH = 20_000


def demo_file(settings: Settings) -> Path:
    return settings.data_dir / "demo.json"


def seed(
    settings: Settings, *, cards: int, months: int, visits: int, seed: int, if_empty: bool
) -> dict[str, Any]:
    """Create the demo merchants and history; return logins, device secrets and a demo card."""
    engine = write_engine(make_engine(settings.resolved_database_url))
    keyring = load_keyring(settings)
    rng = random.Random(seed)
    now = utcnow()
    try:
        with Session(engine, expire_on_commit=False) as session:
            if if_empty and session.exec(select(Merchant.id)).first() is not None:
                return load_demo(settings) or {"skipped": True, "merchants": []}
            created = _create_merchants(session, now)
            session.commit()
        with engine.begin() as conn:
            demo_card = _history(conn, keyring, created, rng, cards, months, visits, now)
            # The dashboard reads rollups, never the ledger: roll up the history written in bulk.
            for m in created:
                rebuild_rollups(conn, merchant_id=m["merchant_id"])
    finally:
        engine.dispose()
    result: dict[str, Any] = {
        "merchants": [
            {k: v for k, v in m.items() if k not in ("merchant_id", "program_id", "device_ids",
                                                    "required", "weight", "stamps")}
            for m in created
        ],
        "demo_card": {"token": demo_card, "card_url": f"{settings.base_url}/c/{demo_card}"},
        "public_url": settings.base_url,
    }  # fmt: skip
    path = demo_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)
    return result


def load_demo(settings: Settings) -> dict[str, Any] | None:
    path = demo_file(settings)
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def describe(result: dict[str, Any]) -> str:
    """What `make run` prints: where to go and the demo logins."""
    if not result.get("merchants"):
        return "demo data present (no demo.json with its logins in the data dir)"
    base = result.get("public_url", "http://127.0.0.1:8000")
    lines = []
    for m in result["merchants"]:
        lines += [
            f"  {m['name']} ({m['slug']})",
            f"    poster page:   {base}/m/{m['slug']}",
            f"    owner login:   {m['owner_email']} / {m['owner_password']}",
            f"    device secret: {m['device_secret']}",
        ]
    card = result.get("demo_card", {})
    if card:
        lines.append(f"  demo card: {card['card_url']}")
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


def _visit_time(rng: random.Random, start: datetime, days: int) -> datetime:
    while True:
        day = start + timedelta(days=rng.randrange(days))
        if rng.random() * 1.5 < WEEKDAY_WEIGHTS[day.weekday()]:
            break
    hour = rng.choices(list(HOUR_WEIGHTS), weights=list(HOUR_WEIGHTS.values()))[0]
    # Vienna local hours, stored in UTC.
    return day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60)) - timedelta(
        hours=1
    )


def _history(
    conn: Connection,
    keyring: crypto.Keyring,
    created: list[dict[str, Any]],
    rng: random.Random,
    n_cards: int,
    months: int,
    n_visits: int,
    now: datetime,
) -> str:
    days = max(months * 30, 1)
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0)
    card_ids = [rng.randbytes(16) for _ in range(max(n_cards, 1))]
    # Each card has a loyalty weight (a few regulars, many occasional visitors) and a home
    # merchant plus, for some, a second one.
    weights = [math.exp(rng.gauss(0, 1.1)) for _ in card_ids]
    total = sum(weights)
    merchant_weights = [m["weight"] for m in created]
    ledger_rows: list[dict[str, Any]] = []
    balance_rows: list[dict[str, Any]] = []
    card_rows: list[dict[str, Any]] = []
    ledger_table = LedgerEntry.__table__  # type: ignore[attr-defined]
    for index, card_id in enumerate(card_ids):
        count = max(1, round(n_visits * weights[index] / total))
        homes = rng.choices(range(len(created)), weights=merchant_weights, k=2)
        # A card starts some time in the period: cohorts of new customers every month.
        first = _visit_time(rng, start, days)
        times = sorted(
            [first]
            + [_visit_time(rng, first, max((now - first).days, 1)) for _ in range(count - 1)]
        )
        visited: set[int] = set()
        state: dict[int, dict[str, Any]] = {}
        for at in times:
            at = min(at, now - timedelta(minutes=5))
            m = created[homes[0] if rng.random() < 0.8 else homes[1]]
            visited.add(m["merchant_id"])
            holder = crypto.holder_for(keyring, card_id, m["merchant_id"])
            b = state.setdefault(
                m["merchant_id"],
                {"merchant": m, "holder": holder, "stamps": 0, "lifetime": 0, "redeemed": 0,
                 "visits": 0, "first": at, "last": at},
            )  # fmt: skip
            n = rng.choice(m["stamps"])
            device = rng.choice(m["device_ids"])
            ledger_rows.append(_entry(m, holder, "stamp", n, device, at))
            b["stamps"] += n
            b["lifetime"] += n
            b["visits"] += 1
            b["last"] = at
            if b["stamps"] >= m["required"] and rng.random() < 0.7:
                ledger_rows.append(
                    _entry(
                        m, holder, "redemption", -m["required"], device, at + timedelta(seconds=30)
                    )
                )
                b["stamps"] -= m["required"]
                b["redeemed"] += 1
            if len(ledger_rows) >= BATCH:
                conn.execute(insert(ledger_table), ledger_rows)
                ledger_rows = []
        for merchant_id, b in state.items():
            balance_rows.append(
                {"merchant_id": merchant_id, "program_id": b["merchant"]["program_id"],
                 "holder": b["holder"], "stamps": b["stamps"], "lifetime_stamps": b["lifetime"],
                 "redeemed": b["redeemed"], "visits": b["visits"], "first_visit_at": b["first"],
                 "last_visit_at": b["last"], "last_stamp_at": b["last"],
                 "stamp_day": b["last"].date(), "day_stamps": 0}
            )  # fmt: skip
        card_rows.append(
            {"ref": crypto.card_ref(keyring, card_id), "created_day": first.date(),
             "last_seen_day": times[-1].date(), "deleted_day": None,
             "sealed_wallet": crypto.seal_wallet(keyring, card_id, sorted(visited))}
        )  # fmt: skip
    if ledger_rows:
        conn.execute(insert(ledger_table), ledger_rows)
    for table, rows in (
        (Balance.__table__, balance_rows),  # type: ignore[attr-defined]
        (Card.__table__, card_rows),  # type: ignore[attr-defined]
    ):
        for i in range(0, len(rows), BATCH):
            conn.execute(insert(table), rows[i : i + BATCH])
    # The first card is the one `make run` shows: a regular with stamps at the café.
    return crypto.sign_card(keyring, card_ids[0])


def _entry(
    m: dict[str, Any], holder: str, kind: str, delta: int, device: int, at: datetime
) -> dict[str, Any]:
    return {
        "id": random.getrandbits(128).to_bytes(16, "big").hex(),
        "merchant_id": m["merchant_id"],
        "program_id": m["program_id"],
        "holder": holder,
        "kind": kind,
        "delta": delta,
        "device_id": device,
        "idempotency_key": None,
        "voids_entry_id": None,
        "created_at": at.astimezone(UTC),
    }
