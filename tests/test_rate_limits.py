"""Per-client limits on what needs no login, held in memory only; idle cards purged.

Each limit is tried with a small setting, from two client addresses: the one that goes over is
refused with 429 and Retry-After, the other is not, and no table holds either address.
"""

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select, text
from sqlmodel import Session

from app import maintenance
from app.config import Settings
from app.feedback.models import ReviewClick
from app.main import create_app
from app.merchants.models import Merchant
from app.tokens.cards import parse_card
from app.tokens.models import Card
from app.tokens.service import create_card, read_card, remember_visits
from tests.helpers.api import new_card, stamp
from tests.helpers.clock import Clock
from tests.helpers.shops import Shop, make_shop, new_pairing

STRANGER = ("203.0.113.7", 40000)
NEIGHBOUR = ("198.51.100.9", 40001)


@pytest.fixture
def limited(settings: Settings, clock: Clock) -> Iterator[FastAPI]:
    application = create_app(
        settings.model_copy(
            update={
                "rate_limits": "on",
                "rate_limit_cards": "3/minute",
                "rate_limit_restore": "2/minute",
                "rate_limit_codes": "2/minute",
                "rate_limit_pairing": "2/minute",
            }
        ),
        clock=clock,
    )
    yield application
    application.state.writer.stop()
    application.state.engine.dispose()


def client_at(app: FastAPI, address: tuple[str, int]) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, client=address)


def assert_refused(response: object, *, page: bool = False) -> None:
    assert response.status_code == 429  # type: ignore[attr-defined]
    assert int(response.headers["Retry-After"]) >= 1  # type: ignore[attr-defined]
    kind = "text/html" if page else "application/problem+json"
    assert response.headers["content-type"].startswith(kind)  # type: ignore[attr-defined]


def test_card_creation_is_limited_per_client(limited: FastAPI) -> None:
    with client_at(limited, STRANGER) as stranger, client_at(limited, NEIGHBOUR) as neighbour:
        for _ in range(3):
            assert stranger.post("/api/v1/cards").status_code == 201
        refused = stranger.post("/api/v1/cards")
        assert_refused(refused)
        assert "Too many new cards" in refused.json()["detail"]
        # The one-tap button shares the limit, and a browser is shown a page.
        page = stranger.post("/cards/new", headers={"Accept": "text/html"}, follow_redirects=False)
        assert_refused(page, page=True)
        # Another address is not held back by the first.
        assert neighbour.post("/api/v1/cards").status_code == 201


def test_restore_is_limited(limited: FastAPI) -> None:
    with client_at(limited, STRANGER) as stranger:
        for _ in range(2):
            assert (
                stranger.post("/api/v1/cards/restore", json={"recovery_code": "A" * 26}).status_code
                == 404
            )
        assert_refused(stranger.post("/api/v1/cards/restore", json={"recovery_code": "A" * 26}))


def test_guessing_claim_codes_is_limited(limited: FastAPI) -> None:
    with client_at(limited, STRANGER) as stranger:
        token = new_card(stranger)
        guess = {"token": token}
        for _ in range(2):
            assert stranger.post(f"/api/v1/claims/{'A' * 20}", json=guess).status_code == 404
        assert_refused(stranger.post(f"/api/v1/claims/{'B' * 20}", json=guess))
        # The claim page looks codes up too, and counts against the same limit.
        assert_refused(stranger.get(f"/k/{'C' * 20}", headers={"Accept": "text/html"}), page=True)


def test_guessing_pairing_codes_is_limited(limited: FastAPI) -> None:
    shop = make_shop(limited, "Café Sonne")
    with client_at(limited, STRANGER) as stranger, client_at(limited, NEIGHBOUR) as neighbour:
        for _ in range(2):
            assert stranger.post("/api/v1/till/pair", json={"code": "A" * 12}).status_code in (
                404,
                410,
            )
        assert_refused(stranger.post("/api/v1/till/pair", json={"code": "B" * 12}))
        # The shop's own tablet, elsewhere, still pairs.
        code = new_pairing(limited, shop).code
        assert neighbour.post("/api/v1/till/pair", json={"code": code}).status_code == 201


def test_limits_off_refuse_nothing(app: FastAPI) -> None:
    # The default test settings have TREU_RATE_LIMITS=off, as benchmarks and load tests do.
    assert app.state.settings.rate_limits == "off"
    with client_at(app, STRANGER) as stranger:
        for _ in range(40):
            assert stranger.post("/api/v1/cards").status_code == 201


def test_no_table_holds_a_client_address(limited: FastAPI) -> None:
    with client_at(limited, STRANGER) as stranger:
        for _ in range(5):
            stranger.post("/api/v1/cards")
            stranger.post("/api/v1/cards/restore", json={"recovery_code": "A" * 26})
    engine = limited.state.engine
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                assert STRANGER[0] not in " ".join(map(str, row)), table
    # Not even the limiter's memory names it: its buckets are keyed hashes.
    assert STRANGER[0] not in repr(limited.state.rate_limits._limiter.storage.__dict__)


def _clicks(app: FastAPI, merchant_id: int) -> int:
    with Session(app.state.engine) as session:
        count = session.execute(
            select(func.coalesce(func.sum(ReviewClick.clicks), 0)).where(
                ReviewClick.merchant_id == merchant_id
            )
        ).scalar_one()
    return int(count)


def test_review_clicks_count_once_an_hour_per_client(limited: FastAPI, shop: Shop) -> None:
    with Session(limited.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        merchant.review_url = "https://search.google.com/local/writereview?placeid=ChIJtest"
        session.add(merchant)
        session.commit()
    with client_at(limited, STRANGER) as stranger, client_at(limited, NEIGHBOUR) as neighbour:
        for _ in range(5):
            assert stranger.get(f"/r/{shop.slug}", follow_redirects=False).status_code == 303
        assert _clicks(limited, shop.merchant_id) == 1
        neighbour.get(f"/r/{shop.slug}", follow_redirects=False)
        assert _clicks(limited, shop.merchant_id) == 2


# --- idle cards ---------------------------------------------------------------------------


def _card_refs(app: FastAPI) -> set[str]:
    with Session(app.state.engine) as session:
        return set(session.exec(select(Card.ref)).scalars())  # type: ignore[call-overload]


def test_idle_one_tap_cards_are_purged_and_no_other(
    app: FastAPI, client: TestClient, shop: Shop, clock: Clock
) -> None:
    keyring = app.state.keyring
    idle = new_card(client)
    stamped = new_card(client)
    stamp(client, shop, stamped)
    client.get(f"/api/v1/cards/{stamped}")  # its page sees the shop: a wallet is kept
    looked_at = new_card(client)
    deleted = new_card(client)
    client.delete(f"/api/v1/cards/{deleted}")
    with Session(app.state.engine) as session:
        printed = create_card(session=session, keyring=keyring, now=clock(), printed=True)
        session.commit()
    refs = {
        name: parse_card(keyring, token).ref
        for name, token in {
            "idle": idle, "stamped": stamped, "looked_at": looked_at, "deleted": deleted,
            "printed": printed.token,
        }.items()
    }  # fmt: skip
    clock.advance(timedelta(days=25).total_seconds())
    client.get(f"/api/v1/cards/{looked_at}")  # seen again after 25 days: not idle
    clock.advance(timedelta(days=6).total_seconds())
    removed = maintenance.run_once(app.state.engine, app.state.settings, clock())
    assert removed["idle_cards"] == 1
    left = _card_refs(app)
    assert refs["idle"] not in left
    assert {refs["stamped"], refs["looked_at"], refs["deleted"], refs["printed"]} <= left
    # The purged card is gone for its holder too; the others work as before.
    assert client.get(f"/api/v1/cards/{idle}").status_code == 404
    assert client.get(f"/api/v1/cards/{stamped}").status_code == 200


def test_a_card_seen_with_no_shop_keeps_no_wallet(
    app: FastAPI, client: TestClient, clock: Clock
) -> None:
    keyring = app.state.keyring
    token = new_card(client)
    clock.advance(timedelta(days=2).total_seconds())
    key = parse_card(keyring, token)
    with app.state.engine.connect() as conn:
        read = read_card(db=conn, keyring=keyring, key=key, now=clock(), base_url="x")
    assert read.sealed_wallet is not None  # the last-seen day moves on ...
    with Session(app.state.engine) as session:
        remember_visits(
            session=session, key=key, sealed_wallet=read.sealed_wallet, today=clock().date()
        )
        session.commit()
        card = session.get(Card, key.ref)
        assert card is not None
        assert card.last_seen_day == clock().date()
        assert card.sealed_wallet is None  # ... and no wallet says "no shop seen"


def test_treu_serve_runs_the_housekeeping_on_its_timer(settings: Settings, clock: Clock) -> None:
    application = create_app(
        settings.model_copy(update={"maintenance_interval_seconds": 1}), clock=clock
    )
    try:
        with TestClient(application) as client:
            token = new_card(client)
            ref = parse_card(application.state.keyring, token).ref
            clock.advance(timedelta(days=31).total_seconds())
            deadline = time.monotonic() + 10
            # Asked of the table, not of the card view: a look at the card is a visit.
            while ref in _card_refs(application):
                assert time.monotonic() < deadline, "the idle card was never purged"
                time.sleep(0.2)
            assert client.get(f"/api/v1/cards/{token}").status_code == 404
    finally:
        application.state.writer.stop()
        application.state.engine.dispose()
