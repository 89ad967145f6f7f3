"""The loyalty levers at the till and on the card page (issue 20): promotions, tiers, reward
levels, programs that end and stamps that expire, as a cashier, a customer and an owner see them.

Every time that matters is set on the test clock in the shop's own time zone (Europe/Vienna),
so the suite means the same whatever hour it runs at. After each story the ledger must still add
up to every balance, and the dashboard's rollups must equal a recomputation from the ledger.
"""

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import SQLModel

from app.analytics import models as analytics_models
from app.db import write_engine
from app.ledger import service as ledger_service
from app.ledger.models import Balance, LedgerEntry
from app.loyalty import rules
from app.loyalty import service as loyalty
from app.loyalty.models import Promotion
from app.merchants.models import Program
from app.tokens import crypto
from tests.helpers.api import new_card, redeem, stamp, void
from tests.helpers.clock import Clock
from tests.helpers.loyalty import add_program, add_promotion, add_tier, as_owner, set_levels
from tests.helpers.rollups import assert_consistent, stored
from tests.helpers.shops import Shop, make_shop

balance = Balance.__table__  # type: ignore[attr-defined]
ledger = LedgerEntry.__table__  # type: ignore[attr-defined]
promotion_table = Promotion.__table__  # type: ignore[attr-defined]

VIENNA = ZoneInfo("Europe/Vienna")
# Entries that add to what a card has earned (lifetime stamps), as long as they are not undone.
EARNED = ("stamp", "bonus")


def vienna(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A moment given on a clock in the shop, as the UTC instant the test clock holds."""
    return datetime(year, month, day, hour, minute, tzinfo=VIENNA).astimezone(UTC)


def minutes(text: str) -> int:
    return loyalty.parse_time(text)


@pytest.fixture
def cafe(app: FastAPI, clock: Clock) -> Shop:
    """A café without a cooldown (every test stamps as often as it likes), on a Tuesday."""
    clock.now = vienna(2027, 3, 2)
    return make_shop(app, "Café Hebel", cooldown_seconds=0, stamps_required=10)


@pytest.fixture
def lunch(app: FastAPI, cafe: Shop) -> Program:
    """The café's second program, for stories across two programs of one shop."""
    return add_program(app, cafe, "Mittagsmenü", 6, "1 Dessert")


# --- what the till, the card page and the database say --------------------------------------------


def stamped(client: TestClient, shop: Shop, token: str, **body: Any) -> dict[str, Any]:
    response = stamp(client, shop, token, **body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def bonus_of(answer: dict[str, Any]) -> list[tuple[str, int]]:
    """The bonuses a stamp's answer lists, as the till says them: (title, stamps)."""
    return [(b["title"], b["stamps"]) for b in answer["bonus"]]


def refused(response: Any, status: int, code: str) -> None:
    assert (response.status_code, response.json().get("code")) == (status, code), response.text


def card_view(client: TestClient, token: str, shop: Shop, program_id: int | None = None) -> Any:
    """The card page's card for this shop (and program), or None when it shows none."""
    response = client.get(f"/api/v1/cards/{token}")
    assert response.status_code == 200, response.text
    found = [
        c
        for c in response.json()["cards"]
        if c["merchant"]["slug"] == shop.slug
        and c["program"]["id"] == (program_id or shop.program_id)
    ]
    assert len(found) <= 1
    return found[0] if found else None


def holder_of(app: FastAPI, shop: Shop, token: str) -> str:
    keyring = app.state.keyring
    return crypto.holder_for(keyring, crypto.verify_token(keyring, token), shop.merchant_id)


def entries_of(app: FastAPI, shop: Shop, token: str) -> list[Any]:
    with app.state.engine.connect() as conn:
        query = select(ledger).where(
            ledger.c.merchant_id == shop.merchant_id,
            ledger.c.holder == holder_of(app, shop, token),
        )
        return sorted(conn.execute(query), key=lambda e: (e.created_at, e.kind != "stamp"))


def spent(app: FastAPI, promotion_id: int | None) -> int:
    with app.state.engine.connect() as conn:
        query = select(promotion_table.c.spent).where(promotion_table.c.id == promotion_id)
        return int(conn.execute(query).scalar_one())


# What the owner does in the merchant area, through its service (ids as the pages pass them).


def end_promotion(app: FastAPI, shop: Shop, promotion: Promotion) -> None:
    promotion_id, now = promotion.id, app.state.clock()
    assert promotion_id is not None
    as_owner(
        app, shop,
        lambda s, m: loyalty.end_promotion(session=s, merchant=m, promotion_id=promotion_id,
                                           now=now),
    )  # fmt: skip


def archive(app: FastAPI, shop: Shop, program: Program) -> None:
    program_id, now = program.id, app.state.clock()
    assert program_id is not None
    as_owner(
        app, shop,
        lambda s, m: loyalty.archive_program(session=s, merchant=m, program_id=program_id, now=now),
    )  # fmt: skip


def close(app: FastAPI, shop: Shop, program: Program) -> int:
    """Archive and close a program out; the number of cards whose stamps were booked out."""
    program_id, now = program.id, app.state.clock()
    assert program_id is not None
    archive(app, shop, program)
    _program, cards = as_owner(
        app, shop,
        lambda s, m: loyalty.close_program(session=s, merchant=m, program_id=program_id, now=now),
    )  # fmt: skip
    return cards


def set_expiry(app: FastAPI, shop: Shop, months: int) -> None:
    as_owner(
        app, shop,
        lambda s, m: loyalty.set_expiry(session=s, merchant=m, program_id=shop.program_id,
                                        months=months),
    )  # fmt: skip


def assert_books_balance(app: FastAPI) -> None:
    """Every balance is the sum of its ledger entries; what a card earned (lifetime stamps) is
    its stamps and bonuses not undone; every bonus belongs to a stamp of the same card."""
    with app.state.engine.connect() as conn:
        balances = list(conn.execute(select(balance)))
        entries = list(conn.execute(select(ledger)))
    by_id = {e.id: e for e in entries}
    for b in balances:
        key = (b.merchant_id, b.program_id, b.holder)
        mine = [e for e in entries if (e.merchant_id, e.program_id, e.holder) == key]
        assert b.stamps == sum(e.delta for e in mine) >= 0, b
        earned = [
            e
            for e in mine
            if e.kind in EARNED or (e.kind == "void" and by_id[e.voids_entry_id].kind in EARNED)
        ]
        assert b.lifetime_stamps == sum(e.delta for e in earned), b
    keys = {(b.merchant_id, b.program_id, b.holder) for b in balances}
    assert {(e.merchant_id, e.program_id, e.holder) for e in entries} <= keys
    for e in entries:
        if e.kind == "bonus":
            parent = by_id[e.for_entry_id]
            assert parent.kind == "stamp"
            assert (parent.merchant_id, parent.program_id, parent.holder) == (
                e.merchant_id, e.program_id, e.holder,
            )  # fmt: skip
            assert e.idempotency_key is None and e.created_at == parent.created_at
        else:
            assert e.for_entry_id is None and e.promotion_id is None


def assert_all_consistent(app: FastAPI) -> None:
    assert_books_balance(app)
    assert_consistent(app)


# --- multiplier: shop-local weekdays and hours ----------------------------------------------------


def test_multiplier_counts_double_only_in_its_hours_and_on_its_days(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    happy = add_promotion(
        app, cafe, "multiplier", title="Happy Hour", weekdays=rules.weekday_mask(["tue", "thu"]),
        from_minute=minutes("14:00"), to_minute=minutes("16:00"),
    )  # fmt: skip
    token = new_card(client)
    expected = [
        (vienna(2027, 3, 2, 13, 59), 2, []),  # Tuesday, a minute early
        (vienna(2027, 3, 2, 14, 0), 2, [("Happy Hour", 2)]),  # Tuesday 14:00: from on
        (vienna(2027, 3, 2, 15, 59), 3, [("Happy Hour", 3)]),  # every stamp of the scan
        (vienna(2027, 3, 2, 16, 0), 1, []),  # 16:00: over
        (vienna(2027, 3, 3, 15, 0), 1, []),  # Wednesday
        (vienna(2027, 3, 4, 15, 0), 1, [("Happy Hour", 1)]),  # Thursday
        (vienna(2027, 3, 5, 15, 0), 1, []),  # Friday
    ]
    total = 0
    for at, count, bonus in expected:
        clock.now = at
        answer = stamped(client, cafe, token, count=count)
        assert bonus_of(answer) == bonus, at
        assert [b["promotion_id"] for b in answer["bonus"]] == [happy.id] * len(bonus)
        total += count + sum(n for _, n in bonus)
        assert answer["stamps"] == total
        assert answer["delta"] == count  # the cashier's stamps; the bonus is its own entry
    assert card_view(client, token, cafe)["stamps"] == total
    assert_all_consistent(app)


def test_a_triple_multiplier(app: FastAPI, client: TestClient, cafe: Shop) -> None:
    add_promotion(app, cafe, "multiplier", title="Triple", factor=3)
    answer = stamped(client, cafe, new_card(client), count=2)
    assert (bonus_of(answer), answer["stamps"]) == ([("Triple", 4)], 6)


@pytest.mark.parametrize(
    ("at", "counts"),
    [
        # Spring forward, Sunday 28 March 2027: 14:30 UTC was 15:30 on Saturday, is 16:30 now.
        (datetime(2027, 3, 27, 14, 30, tzinfo=UTC), True),
        (datetime(2027, 3, 28, 14, 30, tzinfo=UTC), False),
        (datetime(2027, 3, 28, 13, 30, tzinfo=UTC), True),
        (datetime(2027, 3, 28, 12, 0, tzinfo=UTC), True),  # 14:00 summer time
        (datetime(2027, 3, 28, 11, 59, tzinfo=UTC), False),
        # Fall back, Sunday 25 October 2026: 13:30 UTC was 15:30 on Saturday, is 14:30 now.
        (datetime(2026, 10, 24, 14, 30, tzinfo=UTC), False),
        (datetime(2026, 10, 25, 14, 30, tzinfo=UTC), True),
        (datetime(2026, 10, 25, 15, 0, tzinfo=UTC), False),  # 16:00 winter time
    ],
    ids=lambda v: v.isoformat() if isinstance(v, datetime) else str(v),
)
def test_multiplier_hours_follow_the_shops_clock_across_a_time_change(
    app: FastAPI, client: TestClient, clock: Clock, at: datetime, counts: bool
) -> None:
    clock.now = at - timedelta(days=2)
    shop = make_shop(app, "Café Uhr", cooldown_seconds=0)
    add_promotion(
        app, shop, "multiplier", weekdays=rules.weekday_mask(["sat", "sun"]),
        from_minute=minutes("14:00"), to_minute=minutes("16:00"),
    )  # fmt: skip
    clock.now = at
    assert bool(stamped(client, shop, new_card(client))["bonus"]) is counts


def test_the_hour_that_happens_twice_counts_both_times(
    app: FastAPI, client: TestClient, clock: Clock
) -> None:
    """Sunday 25 October 2026, 02:00 to 03:00 Vienna time happens twice (summer, then winter)."""
    clock.now = datetime(2026, 10, 24, tzinfo=UTC)
    shop = make_shop(app, "Nachtcafé", cooldown_seconds=0)
    add_promotion(
        app, shop, "multiplier", weekdays=rules.weekday_mask(["sun"]),
        from_minute=minutes("02:00"), to_minute=minutes("03:00"),
    )  # fmt: skip
    token = new_card(client)
    for utc_hour, minute, counts in [(23, 59, False), (0, 30, True), (1, 30, True), (2, 0, False)]:
        day = 24 if utc_hour == 23 else 25
        clock.now = datetime(2026, 10, day, utc_hour, minute, tzinfo=UTC)
        assert bool(stamped(client, shop, token)["bonus"]) is counts, clock.now


def test_multiplier_weekday_is_the_shops_not_utcs(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    """Monday 23:30 UTC is already Tuesday 00:30 in Vienna."""
    add_promotion(
        app, cafe, "multiplier", title="Night", weekdays=rules.weekday_mask(["tue"]),
        from_minute=0, to_minute=60,
    )  # fmt: skip
    token = new_card(client)
    clock.now = datetime(2027, 3, 8, 22, 30, tzinfo=UTC)  # Monday 23:30 in Vienna
    assert stamped(client, cafe, token)["bonus"] == []
    clock.now = datetime(2027, 3, 8, 23, 30, tzinfo=UTC)  # Tuesday 00:30 in Vienna
    assert bonus_of(stamped(client, cafe, token)) == [("Night", 1)]


# --- welcome, win-back, anniversary, campaign -----------------------------------------------------


def test_welcome_only_on_the_first_visit_at_the_shop(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop, other_shop: Shop
) -> None:
    add_promotion(app, cafe, "welcome", title="Willkommen", stamps=2)
    lunch = add_program(app, cafe, "Mittagsmenü", 6, "1 Dessert")
    token = new_card(client)
    first = stamped(client, cafe, token)
    assert (bonus_of(first), first["stamps"]) == ([("Willkommen", 2)], 3)
    clock.advance(86_400)
    assert stamped(client, cafe, token)["bonus"] == []
    # The card's first stamp in the shop's other program is no first visit at the shop.
    assert stamped(client, cafe, token, program_id=lunch.id)["bonus"] == []
    # Another card whose first visit is in the other program is welcomed there, once.
    second = new_card(client)
    assert bonus_of(stamped(client, cafe, second, program_id=lunch.id)) == [("Willkommen", 2)]
    assert stamped(client, cafe, second)["bonus"] == []
    # A card known elsewhere is new here; the other shop has no welcome of its own.
    traveller = new_card(client)
    assert stamped(client, other_shop, traveller)["bonus"] == []
    assert bonus_of(stamped(client, cafe, traveller)) == [("Willkommen", 2)]
    assert_all_consistent(app)


def test_a_welcome_for_one_program_only(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop, lunch: Program
) -> None:
    add_promotion(app, cafe, "welcome", title="Mittag neu", program_id=lunch.id, stamps=1)
    token = new_card(client)
    assert stamped(client, cafe, token)["bonus"] == []  # the coffee program: not its program
    other = new_card(client)
    assert bonus_of(stamped(client, cafe, other, program_id=lunch.id)) == [("Mittag neu", 1)]


def test_winback_after_at_least_the_days_away(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    add_promotion(app, cafe, "winback", title="Schön, dass du da bist", stamps=3, away_days=30)
    back, early = new_card(client), new_card(client)
    start = clock.now
    first = [stamped(client, cafe, t)["bonus"] for t in (back, early)]
    assert first == [[], []]  # a first visit is no return
    clock.now = start + timedelta(days=30) - timedelta(minutes=1)
    assert stamped(client, cafe, early)["bonus"] == []
    clock.now = start + timedelta(days=30)
    answer = stamped(client, cafe, back)
    assert (bonus_of(answer), answer["stamps"]) == ([("Schön, dass du da bist", 3)], 5)
    clock.advance(86_400)  # back the next day: no longer away
    assert stamped(client, cafe, back)["bonus"] == []
    assert_all_consistent(app)


def test_winback_counts_a_visit_in_any_program_of_the_shop(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop, lunch: Program
) -> None:
    add_promotion(app, cafe, "winback", stamps=2, away_days=30)
    token = new_card(client)
    start = clock.now
    stamped(client, cafe, token)
    clock.now = start + timedelta(days=20)
    stamped(client, cafe, token, program_id=lunch.id)
    clock.now = start + timedelta(days=35)  # 35 days since its last coffee, 15 since lunch
    assert stamped(client, cafe, token)["bonus"] == []
    clock.now = start + timedelta(days=70)
    assert [b["stamps"] for b in stamped(client, cafe, token, program_id=lunch.id)["bonus"]] == [2]


def test_a_redemption_is_a_visit_too(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    add_promotion(app, cafe, "winback", stamps=2, away_days=30)
    token = new_card(client)
    start = clock.now
    stamped(client, cafe, token, count=10)
    clock.now = start + timedelta(days=25)
    assert redeem(client, cafe, token).status_code == 201
    clock.now = start + timedelta(days=40)  # 15 days after the redemption
    assert stamped(client, cafe, token)["bonus"] == []


def test_anniversary_once_a_year_since_the_first_visit(
    app: FastAPI, client: TestClient, clock: Clock
) -> None:
    clock.now = vienna(2026, 11, 2, 0, 30)  # just after midnight: UTC is still on 1 November
    shop = make_shop(app, "Café Jahrestag", cooldown_seconds=0)
    add_promotion(app, shop, "anniversary", title="Ein Jahr!", stamps=5)
    token = new_card(client)
    assert stamped(client, shop, token)["bonus"] == []
    plan = [
        (vienna(2027, 6, 1), []),
        (vienna(2027, 11, 2, 0, 15), []),  # a quarter of an hour short of a year
        (vienna(2027, 11, 2, 0, 30), [("Ein Jahr!", 5)]),
        (vienna(2027, 11, 9), []),  # a week later: the same year
        (vienna(2028, 10, 1), []),
        (vienna(2029, 1, 15), [("Ein Jahr!", 5)]),  # two years: once, even after a long gap
        (vienna(2029, 1, 16), []),
    ]
    for at, expected in plan:
        clock.now = at
        assert bonus_of(stamped(client, shop, token)) == expected, at
    assert_all_consistent(app)


def test_anniversary_of_a_card_first_seen_in_another_program(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop, lunch: Program
) -> None:
    add_promotion(app, cafe, "anniversary", stamps=2)
    token = new_card(client)
    start = clock.now
    stamped(client, cafe, token)
    clock.now = start + timedelta(days=200)
    stamped(client, cafe, token, program_id=lunch.id)
    clock.now = start + timedelta(days=370)
    assert [b["stamps"] for b in stamped(client, cafe, token, program_id=lunch.id)["bonus"]] == [2]
    clock.advance(86_400)
    assert stamped(client, cafe, token)["bonus"] == []  # the coffee program: same year


def test_campaign_between_its_dates_inclusive_in_shop_time(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    add_promotion(
        app, cafe, "campaign", title="Frühling", stamps=1, starts_on=date(2027, 3, 10),
        ends_on=date(2027, 3, 12),
    )  # fmt: skip
    token = new_card(client)
    plan = [
        (vienna(2027, 3, 9, 23, 50), False),
        # 00:10 in Vienna is still 9 March in UTC: the shop's date counts.
        (vienna(2027, 3, 10, 0, 10), True),
        (vienna(2027, 3, 11, 12), True),
        (vienna(2027, 3, 12, 23, 50), True),  # the last day, to its end
        (vienna(2027, 3, 13, 0, 10), False),
    ]
    for at, counts in plan:
        clock.now = at
        answer = stamped(client, cafe, token)
        assert bonus_of(answer) == ([("Frühling", 1)] if counts else []), at
    assert_all_consistent(app)


def test_promotions_for_one_program_and_for_all(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop, lunch: Program
) -> None:
    add_promotion(app, cafe, "campaign", title="Mittag", program_id=lunch.id, stamps=2)
    add_promotion(app, cafe, "campaign", title="Alle", stamps=1)
    token = new_card(client)
    assert bonus_of(stamped(client, cafe, token)) == [("Alle", 1)]
    lunch_stamp = stamped(client, cafe, token, program_id=lunch.id)
    assert sorted(bonus_of(lunch_stamp)) == [("Alle", 1), ("Mittag", 2)]
    assert lunch_stamp["stamps"] == 4
    assert card_view(client, token, cafe)["stamps"] == 2
    assert card_view(client, token, cafe, lunch.id)["stamps"] == 4
    assert_all_consistent(app)


def test_ended_promotions_give_nothing(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    running = add_promotion(app, cafe, "campaign", title="Jetzt", stamps=1)
    add_promotion(app, cafe, "campaign", title="Vorbei", ends_on=date(2027, 3, 1))
    add_promotion(app, cafe, "campaign", title="Später", starts_on=date(2027, 4, 1))
    token = new_card(client)
    assert bonus_of(stamped(client, cafe, token)) == [("Jetzt", 1)]
    end_promotion(app, cafe, running)
    assert stamped(client, cafe, token)["bonus"] == []
    clock.now = vienna(2027, 4, 1, 8)
    assert bonus_of(stamped(client, cafe, token)) == [("Später", 1)]
    assert_all_consistent(app)


# --- hold-out: a fixed share of cards, by a keyed hash, nothing stored ----------------------------


def test_hold_out_is_a_fixed_share_that_differs_between_promotions() -> None:
    holders = [uuid.uuid4().hex for _ in range(4000)]
    first_key, second_key = uuid.uuid4().hex * 2, uuid.uuid4().hex * 2
    first = {h for h in holders if rules.held_out(first_key, h, 20)}
    second = {h for h in holders if rules.held_out(second_key, h, 20)}
    # 20 % of 4000 is 800; four standard deviations (about 25 each) either side.
    assert 700 <= len(first) <= 900 and 700 <= len(second) <= 900
    # Independent draws: about 20 % of one group is in the other, not all of it.
    assert 80 <= len(first & second) <= 250
    # The same card under the same key: always the same answer; 0 % holds out nobody.
    assert {h for h in holders if rules.held_out(first_key, h, 20)} == first
    assert not any(rules.held_out(first_key, h, 0) for h in holders)
    # A larger share holds out the smaller share's cards and more (the same draw).
    assert first <= {h for h in holders if rules.held_out(first_key, h, 40)}


def test_hold_out_cards_get_no_bonus_every_time_and_nothing_is_stored(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    one = add_promotion(app, cafe, "campaign", title="A", holdout_percent=50)
    two = add_promotion(app, cafe, "campaign", title="B", holdout_percent=50)
    tokens = [new_card(client) for _ in range(24)]
    with app.state.engine.connect() as conn:
        counts_before = _row_counts(conn)
    got: dict[str, set[str]] = {"A": set(), "B": set()}
    for visit in range(2):
        clock.advance(3600)
        for token in tokens:
            titles = {title for title, _ in bonus_of(stamped(client, cafe, token))}
            for title in ("A", "B"):
                if visit == 0 and title in titles:
                    got[title].add(token)
                # The second visit: the same cards get it, the same are held out.
                assert (title in titles) is (token in got[title])
    for promotion, title in ((one, "A"), (two, "B")):
        expected = {
            t
            for t in tokens
            if not rules.held_out(promotion.holdout_key, holder_of(app, cafe, t), 50)
        }
        assert got[title] == expected
        assert 0 < len(got[title]) < len(tokens)
    assert got["A"] != got["B"]
    # Nothing was stored to decide it: the stamps wrote balances, ledger entries, idempotency
    # records and rollups only; the promotions are the rows they were.
    with app.state.engine.connect() as conn:
        counts_after = _row_counts(conn)
        rows = list(conn.execute(select(promotion_table)))
    grown = {t for t in counts_after if counts_after[t] != counts_before[t]}
    assert grown <= {"balance", "ledger_entry", "idempotency_record"} | {
        t for t in grown if t.startswith("analytics_")
    }
    assert {(r.id, r.spent, r.holdout_key) for r in rows} == {
        (one.id, 0, one.holdout_key), (two.id, 0, two.holdout_key),
    }  # fmt: skip


def _row_counts(conn: Any) -> dict[str, int]:
    return {
        table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        for table in SQLModel.metadata.sorted_tables
    }


# --- budgets --------------------------------------------------------------------------------------


def test_a_budget_stops_exactly_when_spent_and_an_undo_gives_it_back(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    promotion = add_promotion(app, cafe, "campaign", title="Limitiert", stamps=2, budget=5)
    tokens = [new_card(client) for _ in range(4)]
    answers = [stamped(client, cafe, t) for t in tokens[:3]]
    # 2 + 2 fit into 5; a third bonus of 2 would make 6: it is not given, not even in part.
    assert [bonus_of(a) for a in answers] == [[("Limitiert", 2)], [("Limitiert", 2)], []]
    assert spent(app, promotion.id) == 4
    # Undoing a stamp undoes its bonus and gives the budget back: the next card gets one.
    undo = void(client, cafe, answers[0]["entry_id"])
    assert undo.status_code == 201, undo.text
    assert spent(app, promotion.id) == 2
    assert bonus_of(stamped(client, cafe, tokens[3])) == [("Limitiert", 2)]
    assert spent(app, promotion.id) == 4
    assert stamped(client, cafe, tokens[0])["bonus"] == []
    # A budget that fits exactly is used up exactly.
    exact = add_promotion(app, cafe, "campaign", title="Genau", stamps=1, budget=3)
    given = [bonus_of(stamped(client, cafe, t)) for t in tokens]
    assert sum(("Genau", 1) in g for g in given) == 3
    assert spent(app, exact.id) == 3
    assert_all_consistent(app)


# --- tiers ----------------------------------------------------------------------------------------


def test_tier_perk_comes_from_the_tier_held_before_the_visit(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    add_tier(app, cafe, "Stammgast", 5, bonus_per_visit=1, perk_text="10 % auf Kuchen")
    add_tier(app, cafe, "Goldgast", 12, bonus_per_visit=2)
    token = new_card(client)
    first = stamped(client, cafe, token, count=5)
    assert first["bonus"] == []  # the visit that reaches the tier earns no perk yet
    view = card_view(client, token, cafe)
    assert view["tier"] == {"name": "Stammgast", "perk": "10 % auf Kuchen"}
    assert view["next_tier"] == {"name": "Goldgast", "lifetime_stamps_needed": 7}
    second = stamped(client, cafe, token, count=5)
    assert (second["bonus"], second["stamps"]) == (
        [{"promotion_id": None, "title": "Stammgast", "stamps": 1}], 11,
    )  # fmt: skip
    # 11 towards status: still the lower tier for this visit, the higher one afterwards.
    third = stamped(client, cafe, token)
    assert (bonus_of(third), third["stamps"]) == ([("Stammgast", 1)], 13)
    assert card_view(client, token, cafe)["tier"]["name"] == "Goldgast"
    assert card_view(client, token, cafe)["next_tier"] is None
    assert bonus_of(stamped(client, cafe, token)) == [("Goldgast", 2)]
    assert_all_consistent(app)


def test_a_redemption_never_lowers_the_tier(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    add_tier(app, cafe, "Stammgast", 10, bonus_per_visit=1)
    token = new_card(client)
    stamped(client, cafe, token, count=10)
    assert redeem(client, cafe, token).status_code == 201
    view = card_view(client, token, cafe)
    assert (view["stamps"], view["tier"]["name"]) == (0, "Stammgast")
    assert bonus_of(stamped(client, cafe, token)) == [("Stammgast", 1)]


def test_status_lapses_after_the_months_the_owner_set(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    add_tier(app, cafe, "Stammgast", 5, bonus_per_visit=1)
    as_owner(app, cafe, lambda s, m: loyalty.set_tier_lapse(session=s, merchant=m, months=3))
    kept, lapsed = new_card(client), new_card(client)
    for token in (kept, lapsed):
        stamped(client, cafe, token, count=5)
    clock.now = vienna(2027, 6, 1)  # 3 months less a day
    assert card_view(client, kept, cafe)["tier"]["name"] == "Stammgast"
    assert bonus_of(stamped(client, cafe, kept)) == [("Stammgast", 1)]
    clock.now = vienna(2027, 6, 3)  # 3 months and a day since the other card's last visit
    view = card_view(client, lapsed, cafe)
    assert view["tier"] is None
    assert view["next_tier"] == {"name": "Stammgast", "lifetime_stamps_needed": 5}
    assert view["stamps"] == 5  # the stamps stay; only the status went
    answer = stamped(client, cafe, lapsed)
    assert (answer["bonus"], answer["stamps"]) == ([], 6)
    assert card_view(client, lapsed, cafe)["next_tier"]["lifetime_stamps_needed"] == 4
    assert_all_consistent(app)


def test_status_counts_every_program_of_the_shop(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop, lunch: Program
) -> None:
    add_tier(app, cafe, "Stammgast", 6, bonus_per_visit=1)
    token = new_card(client)
    stamped(client, cafe, token, count=3)
    stamped(client, cafe, token, count=3, program_id=lunch.id)
    assert card_view(client, token, cafe)["tier"]["name"] == "Stammgast"
    assert bonus_of(stamped(client, cafe, token)) == [("Stammgast", 1)]


# --- reward levels --------------------------------------------------------------------------------


def test_reward_levels_redeem_their_own_stamps(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop, other_shop: Shop
) -> None:
    small, medium = set_levels(app, cafe, [(3, "Kleiner Kaffee"), (6, "Kaffee und Kuchen")])
    theirs = set_levels(app, other_shop, [(2, "Semmel")])[0]
    token = new_card(client)
    stamped(client, cafe, token, count=7)
    view = card_view(client, token, cafe)
    assert view["levels"] == [
        {"id": small.id, "stamps": 3, "reward": "Kleiner Kaffee", "available": True},
        {"id": medium.id, "stamps": 6, "reward": "Kaffee und Kuchen", "available": True},
    ]
    answer = redeem(client, cafe, token, reward_id=small.id)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["delta"], body["stamps"]) == (-3, 4)
    assert body["reward"] == {"id": small.id, "stamps": 3, "text": "Kleiner Kaffee"}
    refused(redeem(client, cafe, token, reward_id=medium.id), 409, "no-reward-due")
    refused(redeem(client, cafe, token, reward_id=theirs.id), 404, "unknown-reward")
    refused(redeem(client, cafe, token, reward_id=999_999), 404, "unknown-reward")
    refused(redeem(client, cafe, token), 409, "no-reward-due")  # the main reward needs 10
    assert [lv["available"] for lv in card_view(client, token, cafe)["levels"]] == [True, False]
    stamped(client, cafe, token, count=6)
    main = redeem(client, cafe, token).json()
    assert (main["delta"], main["stamps"], main["reward"]["id"]) == (-10, 0, None)
    # An undo of a level's redemption gives its stamps back.
    level_redemption = body["entry_id"]
    assert void(client, cafe, level_redemption).json()["stamps"] == 3
    assert_all_consistent(app)


# --- programs that end ----------------------------------------------------------------------------


def test_an_archived_program_refuses_stamps_but_redeems(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    lunch = add_program(app, cafe, "Mittagsmenü", 3, "1 Dessert")
    token = new_card(client)
    stamped(client, cafe, token, count=4, program_id=lunch.id)
    archive(app, cafe, lunch)
    refused(stamp(client, cafe, token, program_id=lunch.id), 409, "program-ended")
    view = card_view(client, token, cafe, lunch.id)
    assert (view["ended"], view["stamps"], view["rewards_available"]) == (True, 4, 1)
    done = redeem(client, cafe, token, program_id=lunch.id)
    assert (done.status_code, done.json()["stamps"]) == (201, 1)
    assert stamped(client, cafe, token)["program"]["id"] == cafe.program_id  # the other runs on


def test_a_closed_program_refuses_everything_and_books_its_stamps_out(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    lunch = add_program(app, cafe, "Mittagsmenü", 3, "1 Dessert")
    tokens = [new_card(client) for _ in range(3)]
    for n, token in enumerate(tokens):
        stamped(client, cafe, token, count=n + 1, program_id=lunch.id)
        stamped(client, cafe, token)
    assert redeem(client, cafe, tokens[2], program_id=lunch.id).status_code == 201  # 3 → 0
    clock.advance(3600)
    now = clock.now
    assert close(app, cafe, lunch) == 2  # the card that had redeemed everything held none
    for token in tokens:
        refused(stamp(client, cafe, token, program_id=lunch.id), 409, "program-closed")
        refused(redeem(client, cafe, token, program_id=lunch.id), 409, "program-closed")
        assert card_view(client, token, cafe, lunch.id) is None
        assert card_view(client, token, cafe)["stamps"] == 1  # the coffee program is untouched
    booked = [e for e in entries_of(app, cafe, tokens[1]) if e.kind == "expiry"]
    assert [(e.program_id, e.delta, e.created_at) for e in booked] == [(lunch.id, -2, now)]
    with app.state.engine.connect() as conn:
        held = conn.execute(
            select(func.sum(balance.c.stamps)).where(balance.c.program_id == lunch.id)
        ).scalar_one()
    assert held == 0
    assert_all_consistent(app)


# --- expiry ---------------------------------------------------------------------------------------


def test_stamps_expire_at_the_next_stamp_after_months_away(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    loyal, away = new_card(client), new_card(client)
    set_expiry(app, cafe, months=2)
    for token in (loyal, away):
        stamped(client, cafe, token, count=4)
    # The card page announces the day.
    assert card_view(client, away, cafe)["expires_on"] == "2027-05-02"
    clock.now = vienna(2027, 5, 1)
    answer = stamped(client, cafe, loyal)
    assert answer["stamps"] == 5  # a day short of two months: nothing expires
    assert card_view(client, loyal, cafe)["expires_on"] == "2027-07-01"
    clock.now = vienna(2027, 5, 3)
    answer = stamped(client, cafe, away)
    assert answer["stamps"] == 1  # the four old stamps are gone, today's stays
    kinds = [(e.kind, e.delta) for e in entries_of(app, cafe, away)]
    assert kinds == [("stamp", 4), ("stamp", 1), ("expiry", -4)]
    assert card_view(client, away, cafe)["stamps"] == 1
    assert_all_consistent(app)


def test_expire_stamps_books_out_the_cards_not_seen(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    lunch = add_program(app, cafe, "Mittagsmenü", 6, "1 Dessert", expire_months=1)
    old, recent, spent_all = new_card(client), new_card(client), new_card(client)
    stamped(client, cafe, old, count=3, program_id=lunch.id)
    stamped(client, cafe, old, count=2)  # the coffee program never expires
    stamped(client, cafe, spent_all, count=6, program_id=lunch.id)
    assert redeem(client, cafe, spent_all, program_id=lunch.id).status_code == 201
    clock.now = vienna(2027, 3, 20)
    stamped(client, cafe, recent, count=2, program_id=lunch.id)
    clock.now = vienna(2027, 4, 3)  # a month and a day after the first visits
    with write_engine(app.state.engine).begin() as conn:
        assert ledger_service.expire_stamps(conn, clock.now) == 1
    with write_engine(app.state.engine).begin() as conn:
        assert ledger_service.expire_stamps(conn, clock.now) == 0  # booked once
    assert card_view(client, old, cafe, lunch.id)["stamps"] == 0
    assert card_view(client, old, cafe, lunch.id)["expires_on"] is None
    assert card_view(client, old, cafe)["stamps"] == 2
    assert card_view(client, recent, cafe, lunch.id)["stamps"] == 2
    assert [(e.kind, e.delta) for e in entries_of(app, cafe, old) if e.kind == "expiry"] == [
        ("expiry", -3)
    ]
    # The card comes back: nothing left to expire, it collects afresh.
    assert stamped(client, cafe, old, program_id=lunch.id)["stamps"] == 1
    assert_all_consistent(app)


# --- the card page --------------------------------------------------------------------------------


def test_the_card_page_shows_the_latest_bonus_for_a_while(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    welcome = add_promotion(app, cafe, "welcome", title="Willkommen", stamps=2)
    add_tier(app, cafe, "Stammgast", 3, bonus_per_visit=1, perk_text="Gratis Keks")
    token = new_card(client)
    stamped(client, cafe, token)
    view = card_view(client, token, cafe)
    assert view["bonus"] == [{"promotion_id": welcome.id, "title": "Willkommen", "stamps": 2}]
    assert view["tier"] == {"name": "Stammgast", "perk": "Gratis Keks"}  # 1 + 2 towards status
    assert (view["next_tier"], view["expires_on"]) == (None, None)
    clock.advance(ledger_service.BONUS_SHOWN_SECONDS + 1)
    assert card_view(client, token, cafe)["bonus"] == []
    answer = stamped(client, cafe, token)
    assert card_view(client, token, cafe)["bonus"] == [
        {"promotion_id": None, "title": "Stammgast", "stamps": 1}
    ]
    assert void(client, cafe, answer["entry_id"]).status_code == 201
    assert card_view(client, token, cafe)["bonus"] == []


# --- replays and undo -----------------------------------------------------------------------------


def test_a_replay_answers_the_same_bonuses_and_books_nothing_twice(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    budgeted = add_promotion(app, cafe, "welcome", title="Willkommen", stamps=2, budget=10)
    add_promotion(app, cafe, "multiplier", title="Doppelt")
    token = new_card(client)
    first = stamp(client, cafe, token, key="till-0001", count=2)
    assert first.status_code == 201
    assert sorted(bonus_of(first.json())) == [("Doppelt", 2), ("Willkommen", 2)]
    before = entries_of(app, cafe, token)
    clock.advance(30)
    again = stamp(client, cafe, token, key="till-0001", count=2)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert entries_of(app, cafe, token) == before
    assert spent(app, budgeted.id) == 2
    assert card_view(client, token, cafe)["stamps"] == 6
    # The undo, retried, too.
    undo = void(client, cafe, first.json()["entry_id"], key="till-0002")
    assert undo.json()["delta"] == -6
    assert void(client, cafe, first.json()["entry_id"], key="till-0002").json() == undo.json()
    assert card_view(client, token, cafe)["stamps"] == 0
    assert spent(app, budgeted.id) == 0
    assert_all_consistent(app)


def test_undoing_a_stamp_undoes_its_bonuses_and_leaves_the_card_as_before(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    add_promotion(app, cafe, "campaign", title="Aktion", stamps=2, budget=100)
    add_promotion(app, cafe, "multiplier", title="Doppelt")
    add_tier(app, cafe, "Stammgast", 4, bonus_per_visit=1)
    set_expiry(app, cafe, months=2)
    token = new_card(client)
    stamped(client, cafe, token, count=2)  # 2 + 2 + 2: status 6, the tier
    clock.advance(2 * 86_400)
    with app.state.engine.connect() as conn:
        rollups_before = stored(conn)
    view_before = card_view(client, token, cafe)
    answer = stamped(client, cafe, token, count=3)
    assert sorted(bonus_of(answer)) == [("Aktion", 2), ("Doppelt", 3), ("Stammgast", 1)]
    assert answer["stamps"] == 6 + 9
    undo = void(client, cafe, answer["entry_id"])
    assert undo.status_code == 201, undo.text
    assert (undo.json()["delta"], undo.json()["stamps"]) == (-9, 6)
    view_after = card_view(client, token, cafe)
    for field in ("stamps", "rewards_available", "levels", "tier", "next_tier", "expires_on"):
        assert view_after[field] == view_before[field], field
    voided = {e.voids_entry_id for e in entries_of(app, cafe, token) if e.kind == "void"}
    bonuses = [e for e in entries_of(app, cafe, token) if e.for_entry_id == answer["entry_id"]]
    assert len(bonuses) == 3 and {b.id for b in bonuses} | {answer["entry_id"]} == voided
    # A bonus cannot be undone on its own, and the stamp not twice.
    lone = entries_of(app, cafe, token)
    first_bonus = next(e.id for e in lone if e.kind == "bonus")
    refused(void(client, cafe, first_bonus), 422, "not-voidable")
    refused(void(client, cafe, answer["entry_id"]), 409, "voided")
    with app.state.engine.connect() as conn:
        rollups_after = stored(conn)
    # The same figures, but for the undo itself, counted once at the undone stamp's hour.
    for name, rows in rollups_after.items():
        if name != analytics_models.activity_table.name:
            assert rows == rollups_before[name], name
    before, after = (_activity(r) for r in (rollups_before, rollups_after))
    assert {k: v for k, v in after.items() if k != "voids"} == {
        k: v for k, v in before.items() if k != "voids"
    }
    assert sum(after["voids"].values()) == sum(before.get("voids", {}).values()) + 1
    assert_all_consistent(app)


def _activity(rollups: dict[str, set[tuple[Any, ...]]]) -> dict[str, dict[tuple[Any, ...], int]]:
    """The activity rollup as counts by field, then by key (merchant, day, hour, device)."""
    table = analytics_models.activity_table
    keys = len(table.primary_key.columns)
    names = [c.name for c in table.columns]
    out: dict[str, dict[tuple[Any, ...], int]] = {}
    for row in rollups[table.name]:
        for name, value in zip(names[keys:], row[keys:], strict=True):
            if value:
                out.setdefault(name, {})[row[:keys]] = value
    return out


def test_a_corrected_first_stamp_is_still_welcomed(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    """The cashier typed 3 instead of 1 on a new card's first visit and undid it at once."""
    add_promotion(app, cafe, "welcome", title="Willkommen", stamps=2, budget=10)
    token = new_card(client)
    wrong = stamped(client, cafe, token, count=3)
    assert void(client, cafe, wrong["entry_id"]).status_code == 201
    right = stamped(client, cafe, token)
    assert (bonus_of(right), right["stamps"]) == ([("Willkommen", 2)], 3)
    assert stamped(client, cafe, token)["bonus"] == []  # and only once
    assert_all_consistent(app)


def test_a_corrected_return_is_still_welcomed_back(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    add_promotion(app, cafe, "winback", title="Zurück", stamps=2, away_days=30)
    add_promotion(app, cafe, "anniversary", title="Jahrestag", stamps=3)
    token = new_card(client)
    stamped(client, cafe, token)
    clock.advance(400 * 86_400)
    wrong = stamped(client, cafe, token, count=4)
    assert sorted(bonus_of(wrong)) == [("Jahrestag", 3), ("Zurück", 2)]
    assert void(client, cafe, wrong["entry_id"]).status_code == 201
    clock.advance(20)
    right = stamped(client, cafe, token)
    assert (sorted(bonus_of(right)), right["stamps"]) == ([("Jahrestag", 3), ("Zurück", 2)], 7)
    assert_all_consistent(app)


def test_an_undo_gives_todays_cap_back_only_the_stamps_scanned(
    app: FastAPI, client: TestClient, clock: Clock
) -> None:
    clock.now = vienna(2027, 3, 2, 10)
    shop = make_shop(app, "Kiosk am Eck", cooldown_seconds=0, daily_cap=5)
    add_promotion(app, shop, "campaign", stamps=2)
    token = new_card(client)
    stamped(client, shop, token, count=3)
    second = stamped(client, shop, token, count=2)  # the cap's 5 today, and 2 + 2 bonus
    assert second["stamps"] == 9
    assert void(client, shop, second["entry_id"]).json()["stamps"] == 5
    # 3 of today's 5 are still used: 3 more would be 6.
    refused(stamp(client, shop, token, count=3), 429, "daily-cap")
    assert stamped(client, shop, token, count=2)["stamps"] == 9
    assert_all_consistent(app)


def test_an_undo_that_would_overdraw_is_refused_with_its_bonuses(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    add_promotion(app, cafe, "welcome", stamps=2)
    token = new_card(client)
    first = stamped(client, cafe, token, count=8)  # 10 with the welcome
    assert redeem(client, cafe, token).status_code == 201
    refused(void(client, cafe, first["entry_id"]), 409, "void-would-go-negative")
    assert card_view(client, token, cafe)["stamps"] == 0
    assert_all_consistent(app)


def test_a_mixed_day_keeps_books_and_rollups(
    app: FastAPI, client: TestClient, clock: Clock, cafe: Shop
) -> None:
    """Every lever at once over a few weeks: the ledger adds up and the rollups agree."""
    lunch = add_program(app, cafe, "Mittagsmenü", 4, "1 Dessert", expire_months=1)
    cookie = set_levels(app, cafe, [(4, "Keks")])[0]
    add_tier(app, cafe, "Stammgast", 8, bonus_per_visit=1)
    add_promotion(app, cafe, "multiplier", weekdays=rules.weekday_mask(["tue"]))
    add_promotion(app, cafe, "welcome", stamps=1, budget=3)
    add_promotion(app, cafe, "winback", stamps=2, away_days=10)
    tokens = [new_card(client) for _ in range(4)]
    done: list[str] = []
    for day in range(0, 50, 4):
        clock.now = vienna(2027, 3, 2) + timedelta(days=day, hours=day % 5)
        for i, token in enumerate(tokens):
            if (day + i) % 3 == 0:
                continue
            program = lunch.id if i % 2 else cafe.program_id
            answer = stamped(client, cafe, token, count=1 + i % 3, program_id=program)
            done.append(answer["entry_id"])
            if answer["stamps"] >= 4 and i % 2 == 0:
                assert redeem(client, cafe, token, reward_id=cookie.id).status_code == 201
        if day % 8 == 0 and done:
            undo = void(client, cafe, done.pop())
            assert undo.status_code == 201 or undo.json()["code"] == "void-would-go-negative"
    with write_engine(app.state.engine).begin() as conn:
        ledger_service.expire_stamps(conn, clock.now + timedelta(days=40))
    assert_all_consistent(app)
