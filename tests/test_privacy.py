"""Privacy at rest (docs/design.md, privacy model 1-3), proved on a real database.

Someone holding a full copy of the database *and* the server keys must learn nothing that says
which records at two shops belong to one card: no card id or token anywhere, per-shop holders
that nothing stored can recompute, idempotency fingerprints keyed per shop, no time finer than
a second, no sequence numbers, a card row with days only and a wallet sealed under the card id.
And nothing about the customer's device or network is kept at all.

The shops in the story pull every loyalty lever (promotions with a hold-out and a budget, a tier,
reward levels, a program closed out), so the same holds for what those store: the shops' own
settings, and bonus and expiry entries in each shop's own ledger, nothing per card besides.
"""

import hashlib
import itertools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import nacl.encoding
import nacl.hash
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Engine, Integer, inspect, text

from app.analytics.rollups import FUNNEL_STEPS, SOURCES
from app.config import Settings
from app.loyalty import service as loyalty
from app.loyalty.models import Promotion
from app.main import create_app
from app.tokens import crypto
from tests.helpers.clock import Clock
from tests.helpers.loyalty import add_program, add_promotion, add_tier, as_owner, set_levels
from tests.helpers.shops import Shop, make_shop

IP = "203.0.113.77"
AGENT = "Mozilla/5.0 (PrivacyProbe; like Gecko) treu-test/1.0"
# What a browser and a reverse proxy put on every request.
NETWORK_HEADERS = {
    "User-Agent": AGENT,
    "X-Forwarded-For": f"{IP}, 198.51.100.9",
    "X-Real-IP": IP,
    "Forwarded": f"for={IP};proto=https",
    "Accept-Language": "de-AT,de;q=0.9",
}
SUSPECT_COLUMN = re.compile(
    r"(^|_)(ip|ips|ip_address|addr|address|remote|forwarded|agent|user_agent|ua|browser|"
    r"referer|referrer|fingerprint_device|device_fingerprint|lang|accept_language)($|_)"
)
IPV4 = re.compile(r"(?<![\d.])\d{1,3}(\.\d{1,3}){3}(?![\d.])")
WORD = re.compile(r"[0-9A-Za-z]{16,}")
SECOND = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?")


@dataclass
class Card:
    token: str
    card_id: bytes

    @property
    def secrets(self) -> list[str]:
        """Every text form of the card id and token that must never be stored."""
        b32 = crypto.b32encode(self.card_id)
        return [
            self.token,
            self.token[:34],  # version, key id and card id: the token's first 21 bytes
            self.card_id.hex(),
            b32,
            crypto.recovery_code(self.card_id),
            crypto.b32decode(self.token).hex(),
        ]


@dataclass
class Story:
    """Two shops, five cards, and what their customers and tills did."""

    app: FastAPI
    a: Shop
    b: Shop
    cards: list[Card]  # cards[0] and cards[1] visit both shops
    entry_ids: list[str]  # the entries the tills made, in the order the ledger wrote them
    promotions: list[Promotion]  # both shops', each with its own hold-out key

    @property
    def engine(self) -> Engine:
        engine: Engine = self.app.state.engine
        return engine

    def holder(self, card: Card, shop: Shop) -> str:
        return crypto.holder_for(self.app.state.keyring, card.card_id, shop.merchant_id)


def write(client: TestClient, shop: Shop, path: str, key: str | None = None, **body: Any) -> Any:
    headers = {**NETWORK_HEADERS, **shop.auth, "Idempotency-Key": key or uuid.uuid4().hex}
    response = client.post(path, json=body or None, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def pull_levers(app: FastAPI, shop: Shop) -> list[Promotion]:
    """What an owner sets up: promotions (one holding out half the cards, one on a budget), a
    tier every card reaches at once, a reward level."""
    promotions = [
        add_promotion(app, shop, "welcome", stamps=2, holdout_percent=50),
        add_promotion(app, shop, "campaign", stamps=1, budget=100),
        add_promotion(app, shop, "multiplier", factor=2),
    ]
    add_tier(app, shop, "Stammgast", 1, bonus_per_visit=1, perk_text="Gratis Keks")
    set_levels(app, shop, [(2, "Espresso")])
    return promotions


def customer_card(app: FastAPI, client: TestClient) -> Card:
    """A card made the way a phone makes one, with everything a browser sends."""
    created = client.post("/api/v1/cards", headers=NETWORK_HEADERS)
    assert created.status_code == 201
    token = created.json()["token"]
    return Card(token, crypto.verify_token(app.state.keyring, token))


@pytest.fixture
def story(settings: Settings) -> Iterator[Story]:
    """The real clock on purpose: what would be stored to the microsecond is stored so here."""
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        a = make_shop(app, "Café Sonne", stamps_required=3, cooldown_seconds=0)
        b = make_shop(app, "Bäckerei Gruber", stamps_required=5, cooldown_seconds=0)
        promotions = pull_levers(app, a) + pull_levers(app, b)
        lunch = add_program(app, a, "Mittagsmenü", 6, "1 Dessert")
        assert lunch.id is not None
        cards = [customer_card(app, client) for _ in range(5)]
        entries: list[str] = []
        both, only_a, only_b = cards[:2], cards[2:4], cards[4:]
        for number, card in enumerate(both, start=1):
            # The same Idempotency-Key and the same body at both shops (two tills that number
            # their requests alike): the stored fingerprints must still differ.
            for shop in (a, b):
                key = f"till-{number:04d}"
                body = write(client, shop, "/api/v1/stamps", key, token=card.token, count=3)
                entries.append(body["entry_id"])
        for shop, card in [(a, c) for c in only_a] + [(b, c) for c in only_b]:
            entries.append(write(client, shop, "/api/v1/stamps", token=card.token)["entry_id"])
        x = cards[0]
        entries.append(write(client, a, "/api/v1/redemptions", token=x.token)["entry_id"])
        undone = write(client, b, "/api/v1/stamps", token=f"http://treu.test/c/{x.token}")
        entries.append(undone["entry_id"])
        entries.append(write(client, b, f"/api/v1/entries/{undone['entry_id']}/void")["entry_id"])
        level = write(client, a, "/api/v1/redemptions", token=x.token, reward_id=_level_id(app, a))
        entries.append(level["entry_id"])
        # Lunch at the café, then the owner closes that program out: its stamps are booked out.
        for card in (x, cards[2]):
            body = write(client, a, "/api/v1/stamps", token=card.token, program_id=lunch.id)
            entries.append(body["entry_id"])
        now, lunch_id = app.state.clock(), lunch.id

        def close(session: Any, merchant: Any) -> None:
            loyalty.archive_program(
                session=session, merchant=merchant, program_id=lunch_id, now=now
            )
            loyalty.close_program(session=session, merchant=merchant, program_id=lunch_id, now=now)

        as_owner(app, a, close)
        # The customer side: the card page (it seals the wallet), export, QR, feedback.
        for card in cards:
            assert client.get(f"/api/v1/cards/{card.token}", headers=NETWORK_HEADERS).is_success
        assert client.get(f"/api/v1/cards/{x.token}/export", headers=NETWORK_HEADERS).is_success
        assert client.get(f"/api/v1/cards/{x.token}/qr.svg", headers=NETWORK_HEADERS).is_success
        for shop, comment in ((a, "Lovely cake"), (b, "Bread was fresh")):
            body = {"token": x.token, "merchant": shop.slug, "rating": 5, "comment": comment}
            given = client.post("/api/v1/feedback", json=body, headers=NETWORK_HEADERS)
            assert given.status_code == 201, given.text
        yield Story(app, a, b, cards, entries, promotions)


def _level_id(app: FastAPI, shop: Shop) -> int:
    with app.state.engine.connect() as conn:
        query = text("SELECT id FROM reward_level WHERE merchant_id = :m")
        return int(conn.execute(query, {"m": shop.merchant_id}).scalar_one())


def dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as the database driver returns it."""
    with engine.connect() as conn:
        return {
            table: [dict(row._mapping) for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
            for table in inspect(conn).get_table_names()
        }


def cells(tables: dict[str, list[dict[str, Any]]]) -> Iterator[tuple[str, str, Any]]:
    for table, rows in tables.items():
        for row in rows:
            for column, value in row.items():
                yield table, column, value


def as_bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | memoryview | bytearray):
        return bytes(value)
    return None


def words(value: Any) -> set[str]:
    """The long runs of letters and digits in a value: ids, hashes, keys, encoded bytes."""
    if isinstance(value, str):
        return set(WORD.findall(value))
    raw = as_bytes(value)
    return {raw.hex()} if raw else set()


def test_no_card_id_token_or_network_trace_is_stored(story: Story) -> None:
    tables = dump(story.engine)
    assert sum(len(rows) for rows in tables.values()) > 40  # the story really wrote
    for table, column, value in cells(tables):
        where = f"{table}.{column}"
        raw = as_bytes(value)
        for card in story.cards:
            if raw is not None:
                assert card.card_id not in raw, where
                assert crypto.b32decode(card.token)[5:21] not in raw, where
            elif isinstance(value, str):
                folded = value.upper()
                for secret in card.secrets:
                    assert secret.upper() not in folded, where
        if isinstance(value, str):
            assert not IPV4.search(value), (where, value)
            for trace in ("PrivacyProbe", "Mozilla", "Gecko", "testclient", "de-AT"):
                assert trace not in value, where
    inspector = inspect(story.engine)
    for table in tables:
        for name in (c["name"] for c in inspector.get_columns(table)):
            assert not SUSPECT_COLUMN.search(name.lower()), f"{table}.{name}"


def test_records_at_two_shops_cannot_be_joined_even_with_the_keys(story: Story) -> None:
    tables = dump(story.engine)
    keyring = story.app.state.keyring
    a, b = story.a.merchant_id, story.b.merchant_id
    # Per shop, every id-like value in its rows; and every row that names a holder.
    values: dict[int, set[str]] = {a: set(), b: set()}
    held: dict[int, list[tuple[str, dict[str, Any]]]] = {a: [], b: []}
    for table, rows in tables.items():
        for row in rows:
            if row.get("merchant_id") in values:
                values[row["merchant_id"]] |= {w for v in row.values() for w in words(v)}
                if "holder" in row:
                    held[row["merchant_id"]].append((table, row))
    assert held[a] and held[b]
    # 1. Nothing id-like at one shop appears at the other: no shared holder, fingerprint, key.
    shared = values[a] & values[b]
    assert not shared
    # 2. The holders of one card differ per shop, and every pair of an A row and a B row stays
    #    apart under every server key: no holder is a keyed hash of the other shop's holder.
    for card in story.cards[:2]:
        assert story.holder(card, story.a) != story.holder(card, story.b)
    keys = [keyring.holder_key, keyring.card_ref_key, keyring.wallet_key, keyring.session_key]
    people = [b"holder" + m.to_bytes(8, "big") for m in (a, b)] + [b"card-ref", b"wallet"]
    holders_b = {row["holder"] for _, row in held[b]}
    for _, row_a in held[a]:
        assert row_a["holder"] not in holders_b
        derived = {_keyed(k, p, bytes.fromhex(row_a["holder"])) for k in keys for p in people}
        assert not derived & holders_b
    # 3. Nothing stored is a card id: treat every 16 bytes found anywhere as one, and none of
    #    them gives a stored holder or card ref. The real card id does (the attack works).
    stored_holders = {row["holder"] for rows in held.values() for _, row in rows}
    refs = {row["ref"] for row in tables["card"]}
    candidates = _sixteen_byte_candidates(tables)
    assert len(candidates) > 100
    for candidate in candidates:
        for merchant in (a, b):
            assert crypto.holder_for(keyring, candidate, merchant) not in stored_holders
        assert crypto.card_ref(keyring, candidate) not in refs
    x = story.cards[0]
    assert crypto.holder_for(keyring, x.card_id, a) in stored_holders
    assert crypto.card_ref(keyring, x.card_id) in refs


def test_the_way_in_is_counts_per_shop_and_day_only(story: Story) -> None:
    """The funnel and the sources (analytics_funnel) hold counts per shop, day and step, no
    card; a card's rollup row adds only which steps it reached and how it came (small codes),
    nothing that is the same for one card at two shops beyond what its visit days already are."""
    tables = dump(story.engine)
    rows = tables["analytics_funnel"]
    assert {row["merchant_id"] for row in rows} == {story.a.merchant_id, story.b.merchant_id}
    assert all(set(row) == {"merchant_id", "day", "step", "cards"} for row in rows)
    assert all(row["step"] in (*FUNNEL_STEPS, *SOURCES) for row in rows)
    cards = tables["analytics_card"]
    assert cards and all(row["steps"] in range(4) for row in cards)
    assert all(row["source"] in (0, *SOURCES) for row in cards)


def _keyed(key: bytes, person: bytes, message: bytes) -> str:
    digest = nacl.hash.blake2b(
        message, digest_size=16, key=key, person=person, encoder=nacl.encoding.RawEncoder
    )
    return str(digest.hex())


def _sixteen_byte_candidates(tables: dict[str, list[dict[str, Any]]]) -> set[bytes]:
    """Every 16-byte string that a stored value holds, read as hex, base32 or raw bytes."""
    found: set[bytes] = set()
    for _, _, value in cells(tables):
        raw = as_bytes(value)
        blobs = [raw] if raw else []
        for word in words(value):
            if re.fullmatch(r"[0-9a-fA-F]+", word) and len(word) % 2 == 0:
                blobs.append(bytes.fromhex(word))
            if re.fullmatch(r"[A-Z2-7]+", word):
                blobs.append(crypto.b32decode(word[: len(word) - len(word) % 8]))
        for blob in blobs:
            found |= {blob[i : i + 16] for i in range(len(blob) - 15)}
    return found


def test_idempotency_fingerprints_are_keyed_per_shop(story: Story) -> None:
    tables = dump(story.engine)
    kept = {(r["merchant_id"], r["key"]): r["fingerprint"] for r in tables["idempotency_record"]}
    a, b = story.a.merchant_id, story.b.merchant_id
    # One card, the same key and the same body at both shops: unrelated fingerprints.
    for key in ("till-0001", "till-0002"):
        assert kept[(a, key)] != kept[(b, key)]
    assert len(set(kept.values())) == len(kept)


def test_levers_store_nothing_per_card_and_nothing_that_joins_shops(story: Story) -> None:
    """Promotions, tiers and reward levels are the shop's own settings; a card's bonuses and
    booked-out stamps are entries in that shop's ledger under its holder there, tied to that
    shop's stamp and promotion only; a hold-out is decided by a keyed hash made and dropped."""
    tables = dump(story.engine)
    a, b = story.a.merchant_id, story.b.merchant_id
    holders = {(r["merchant_id"], r["holder"]) for r in tables["balance"]}
    # 1. The levers' tables hold no card: no holder column, no stored holder in any cell, and
    #    as many rows as the owners made, however many cards were stamped.
    for table, made in (("promotion", 6), ("tier", 2), ("reward_level", 2)):
        assert len(tables[table]) == made, table
        for row in tables[table]:
            assert not {"holder", "ref", "card"} & row.keys(), table
            found = {w for v in row.values() for w in words(v)}
            assert not found & {h for _, h in holders}, table
    # 2. Bonus and expiry entries belong to one shop: its holder, its program, its promotion,
    #    its own stamp; no value in them is shared with another shop or names a card.
    entries = {e["id"]: e for e in tables["ledger_entry"]}
    promotions = {p["id"]: p["merchant_id"] for p in tables["promotion"]}
    programs = {p["id"]: p["merchant_id"] for p in tables["program"]}
    bonuses = [e for e in entries.values() if e["kind"] == "bonus"]
    expired = [e for e in entries.values() if e["kind"] == "expiry"]
    assert bonuses and expired
    for entry in bonuses + expired:
        shop = entry["merchant_id"]
        assert (shop, entry["holder"]) in holders
        assert programs[entry["program_id"]] == shop
        assert entry["idempotency_key"] is None
    for entry in bonuses:
        stamp = entries[entry["for_entry_id"]]
        assert stamp["kind"] == "stamp"
        assert (stamp["merchant_id"], stamp["holder"]) == (entry["merchant_id"], entry["holder"])
        promotion = entry["promotion_id"]
        assert promotion is None or promotions[promotion] == entry["merchant_id"]
    # 3. Hold-out keys are one per promotion, never shared; and the keyed hashes they make of
    #    a holder are stored nowhere (nothing per card), nor does any of them, or any server
    #    key, turn one shop's holder into a value stored at the other shop.
    keys = [p.holdout_key for p in story.promotions]
    assert len(set(keys)) == len(keys) == 6
    stored = {w for _, _, v in cells(tables) for w in words(v)}
    at = {
        m: {w for row in _rows_of(tables, m) for v in row.values() for w in words(v)}
        for m in (a, b)
    }
    for shop, holder in holders:
        other = at[b if shop == a else a]
        for key in keys:
            for size in (8, 16, 32):
                digest = hashlib.blake2b(
                    holder.encode(), key=bytes.fromhex(key), digest_size=size
                ).hexdigest()
                assert digest not in stored
                assert (
                    hashlib.blake2b(
                        bytes.fromhex(holder), key=bytes.fromhex(key), digest_size=size
                    ).hexdigest()
                    not in other
                )


def _rows_of(tables: dict[str, list[dict[str, Any]]], merchant_id: int) -> Iterator[dict[str, Any]]:
    for rows in tables.values():
        yield from (row for row in rows if row.get("merchant_id") == merchant_id)


def test_no_time_finer_than_a_second_and_no_sequence_numbers(story: Story) -> None:
    tables = dump(story.engine)
    times = 0
    for table, column, value in cells(tables):
        if isinstance(value, datetime):
            assert value.microsecond == 0, f"{table}.{column}"
            times += 1
        elif isinstance(value, str) and (found := SECOND.fullmatch(value)):
            assert set((found.group(1) or ".0")[1:]) == {"0"}, f"{table}.{column} {value}"
            times += 1
    assert times > 20
    # A ledger id is its entry's second, as created_at holds it, and 96 random bits: no
    # counter, and no order among the entries of one second.
    ids = story.entry_ids
    rows = {e["id"]: e for e in tables["ledger_entry"]}
    # The tills' entries, and the bonuses, their undos and the booked-out stamps that came
    # with them: every one made the same way.
    assert set(ids) < set(rows)
    assert {r["kind"] for r in rows.values()} >= {"bonus", "expiry", "void", "redemption"}
    for entry_id, row in rows.items():
        created = row["created_at"]
        seconds = created if isinstance(created, datetime) else datetime.fromisoformat(created)
        assert int(entry_id[:8], 16) == int(seconds.replace(tzinfo=UTC).timestamp())
    randoms = [entry_id[8:] for entry_id in ids]
    numbers = sorted(int(entry_id[8:], 16) for entry_id in rows)
    assert min(b - a for a, b in itertools.pairwise(numbers)) > 2**48
    assert randoms != sorted(randoms)
    # No table that names a card or holder has a counter for a key: that would order the rows
    # of every shop on one line, finer than any timestamp.
    inspector = inspect(story.engine)
    for table in inspector.get_table_names():
        columns = {c["name"]: c for c in inspector.get_columns(table)}
        if not {"holder", "ref"} & columns.keys():
            continue
        for name in inspector.get_pk_constraint(table)["constrained_columns"]:
            if isinstance(columns[name]["type"], Integer):
                foreign = {
                    c for fk in inspector.get_foreign_keys(table) for c in fk["constrained_columns"]
                }
                assert name in foreign, f"{table}.{name} is a sequence"


def test_card_row_holds_days_and_a_wallet_sealed_under_the_card_id(story: Story) -> None:
    tables = dump(story.engine)
    keyring = story.app.state.keyring
    rows = {row["ref"]: row for row in tables["card"]}
    # `printed` says how a card was made (a sheet from the shop), nothing about its holder.
    assert set(next(iter(rows.values()))) == {
        "ref", "created_day", "last_seen_day", "sealed_wallet", "deleted_day", "printed",
    }  # fmt: skip
    for row in rows.values():
        for column in ("created_day", "last_seen_day"):
            day = row[column]
            as_text = day if isinstance(day, str) else None
            is_day = isinstance(day, date) and not isinstance(day, datetime)
            assert is_day or re.fullmatch(r"\d{4}-\d\d-\d\d", as_text or ""), (column, day)
    a, b = story.a.merchant_id, story.b.merchant_id
    visited = {0: [a, b], 1: [a, b], 2: [a], 3: [a], 4: [b]}
    for index, card in enumerate(story.cards):
        sealed = as_bytes(rows[crypto.card_ref(keyring, card.card_id)]["sealed_wallet"])
        assert sealed
        assert crypto.open_wallet(keyring, card.card_id, sealed) == visited[index]
        # Without this card's id it does not open: not with another card's, not with anything
        # else that is stored.
        others = [c.card_id for c in story.cards if c is not card]
        for wrong in others + sorted(_sixteen_byte_candidates(tables))[:200]:
            assert crypto.open_wallet(keyring, wrong, sealed) == []
    # Two cards that visited the same shops do not carry the same sealed bytes.
    wallets = [as_bytes(r["sealed_wallet"]) for r in rows.values()]
    assert len(set(wallets)) == len(wallets)


def test_a_stamp_never_writes_the_card_row(app: FastAPI, clock: Clock) -> None:
    """The card row changes only when its holder looks at the card, on another day."""
    a = make_shop(app, "Café Sonne", cooldown_seconds=0)
    b = make_shop(app, "Bäckerei Gruber", cooldown_seconds=0)
    with TestClient(app) as client:
        card = customer_card(app, client)
        ref = crypto.card_ref(app.state.keyring, card.card_id)
        created = _card_row(app.state.engine, ref)
        clock.advance(2 * 86_400)
        for shop in (a, b, a):
            write(client, shop, "/api/v1/stamps", token=card.token)
            assert _card_row(app.state.engine, ref) == created
        assert client.get(f"/api/v1/cards/{card.token}").is_success
        seen = _card_row(app.state.engine, ref)
        assert seen["last_seen_day"] != created["last_seen_day"]
        wallet = as_bytes(seen["sealed_wallet"])
        assert crypto.open_wallet(app.state.keyring, card.card_id, wallet) == [
            a.merchant_id,
            b.merchant_id,
        ]
        clock.advance(86_400)
        write(client, b, "/api/v1/stamps", token=card.token)
        assert _card_row(app.state.engine, ref) == seen


def _card_row(engine: Engine, ref: str) -> dict[str, Any]:
    """The card row as stored; on PostgreSQL with the id of the transaction that wrote it."""
    extra = ", xmin::text AS written_by" if engine.dialect.name == "postgresql" else ""
    with engine.connect() as conn:
        query = text(f"SELECT *{extra} FROM card WHERE ref = :ref")
        row = dict(conn.execute(query, {"ref": ref}).one()._mapping)
    row["sealed_wallet"] = as_bytes(row["sealed_wallet"])
    return row


def test_deleting_a_card_leaves_nothing_that_marks_its_records(
    app: FastAPI, client: TestClient, shop: Shop, other_shop: Shop, clock: Clock
) -> None:
    """Records left without a card would stand out at each shop and link the two."""
    leaving, staying = customer_card(app, client), customer_card(app, client)
    for card in (leaving, staying):
        for at in (shop, other_shop):
            write(client, at, "/api/v1/stamps", token=card.token, count=3)
        body = {"token": card.token, "merchant": shop.slug, "rating": 5}
        assert client.post("/api/v1/feedback", json=body).status_code == 201
    clock.advance(3600)
    assert client.delete(f"/api/v1/cards/{leaving.token}").status_code == 204

    tables = dump(app.state.engine)
    gone = {
        crypto.holder_for(app.state.keyring, leaving.card_id, s.merchant_id)
        for s in (shop, other_shop)
    }
    for table, column, value in cells(tables):
        assert value not in gone, f"{table}.{column} still holds a deleted card's holder"
    # Every remaining ledger record belongs to a card that still has its balance there.
    balances = {(b["merchant_id"], b["holder"]) for b in tables["balance"]}
    assert {(e["merchant_id"], e["holder"]) for e in tables["ledger_entry"]} <= balances
    # The shop's liability counts only cards that exist.
    held = sum(h["cards"] * h["stamps"] for h in tables["analytics_holding"])
    assert held == sum(b["stamps"] for b in tables["balance"]) == 6


def test_nothing_reaches_opentelemetry_even_when_a_deployer_sets_it_up(
    client: TestClient, shop: Shop, card: str
) -> None:
    """FastAPI records every request for OpenTelemetry once a provider is configured: its path
    (a card's token in /c/… and /api/v1/cards/…), the client's address, validation failures
    with their input. treu turns that off, so a process-wide OpenTelemetry set-up (an agent, a
    platform's auto-instrumentation) still receives nothing from it."""
    spans, log_records = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_records))
    readings = InMemoryMetricReader()
    # Process-wide, as a deployer's set-up would be (OpenTelemetry takes it once per process;
    # no other test here sets one).
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[readings]))
    _logs.set_logger_provider(logger_provider)
    assert trace.get_tracer_provider() is tracer_provider  # the set-up took effect

    headers = {**shop.auth, **NETWORK_HEADERS}
    assert client.get(f"/c/{card}", headers=NETWORK_HEADERS).status_code == 200
    assert client.get(f"/api/v1/cards/{card}", headers=NETWORK_HEADERS).status_code == 200
    assert client.post("/api/v1/stamps", headers=headers, json={"token": card}).status_code == 201
    refused = client.post("/api/v1/redemptions", headers=headers, json={"token": card[:-3]})
    assert refused.status_code == 422

    assert spans.get_finished_spans() == ()
    assert log_records.get_finished_logs() == ()
    data = readings.get_metrics_data()
    assert data is None or not any(
        scope.metrics for resource in data.resource_metrics for scope in resource.scope_metrics
    )
