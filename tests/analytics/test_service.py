"""The dashboard's SQL reads the same inputs as the plain-Python reference, and the KPI API
answers only the logged-in owner, about their own shop (SQLite and PostgreSQL)."""

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from app.analytics import kpis, models, service
from app.analytics.exceptions import PeriodError
from app.analytics.rollups import CardState, Rollups, day_number, decode_recent
from app.feedback import service as feedback
from app.feedback.schemas import FeedbackFields
from app.merchants.models import Merchant, Program
from tests.analytics.reference import from_rollups
from tests.helpers.api import new_card, redeem, stamp
from tests.helpers.cards import book, issue_card
from tests.helpers.clock import Clock
from tests.helpers.pages import log_in
from tests.helpers.shops import Shop

VIENNA = ZoneInfo("Europe/Vienna")  # the test shops' zone


def history(client: TestClient, clock: Clock, shop: Shop, rng: random.Random) -> None:
    """Six months of visits by 30 cards at two tills, a few redemptions."""
    clock.now = datetime(2026, 5, 1, 7, 0, tzinfo=UTC)
    cards = [new_card(client) for _ in range(30)]
    for _ in range(180):
        clock.advance(rng.choice((3600, 4 * 3600, 86_400, 2 * 86_400)))
        for token in rng.sample(cards, rng.randint(1, 6)):
            response = stamp(client, shop, token, count=rng.randint(1, 2))
            assert response.status_code in (201, 429)
            if rng.random() < 0.1:
                redeem(client, shop, token)


def stored(app: FastAPI, merchant_id: int) -> tuple[Rollups, list[CardState]]:
    """The rollup tables of one merchant, read back into memory."""
    total = Rollups()
    with app.state.engine.connect() as conn:
        for row in conn.execute(
            select(models.activity_table).where(models.activity_table.c.merchant_id == merchant_id)
        ):
            total.activity[(row.day, row.hour, row.device_id)] = [
                row.scans, row.stamps, row.visits, row.redemptions, row.voids, row.rewards_earned
            ]  # fmt: skip
        for name, (table, columns, counted) in models.COUNTED.items():
            counter = getattr(total, name)
            for row in conn.execute(select(table).where(table.c.merchant_id == merchant_id)):
                counter[tuple(row._mapping[c] for c in columns)] = row._mapping[counted]
        h = models.card_table
        cards = [
            CardState(row.first_day, row.second_day, row.last_day, row.visits,
                      *decode_recent(row.recent))
            for row in conn.execute(select(h).where(h.c.merchant_id == merchant_id))
        ]  # fmt: skip
    return total, cards


def test_sql_reads_what_the_reference_reads(
    app: FastAPI, client: TestClient, clock: Clock, shop: Shop
) -> None:
    history(client, clock, shop, random.Random(3))
    total, cards = stored(app, shop.merchant_id)
    today = clock.now.date()
    choices = [("30d", None, None), ("90d", None, None), ("12m", None, None)]
    choices.append(("custom", date(2026, 6, 3), date(2026, 7, 19)))  # weeks, the first one short
    with Session(app.state.engine) as session:
        for choice, start, end in choices:
            period = service.choose_period(choice=choice, today=today, start=start, end=end)
            got = service.gather(session=session, merchant_id=shop.merchant_id, period=period, k=3)
            expected = from_rollups(
                total,
                cards,
                period=period,
                k=3,
                outstanding=got.outstanding,
                device_labels=got.device_labels,
                program_dues=got.program_dues,
            )
            assert _plain(got) == _plain(expected), choice
            assert sum(s.visits for s in got.steps) > 0, choice
    assert got.device_labels == {shop.device_id: "Till 1"}
    assert got.outstanding.stamps > 0


def _plain(inputs: kpis.Inputs) -> dict[str, Any]:
    out = dict(vars(inputs))
    out["days"] = [d for d in inputs.days if any(vars(d)[f] for f in vars(d) if f != "day")]
    out["hours"] = sorted(h for h in inputs.hours if h[2])
    out["devices"] = sorted(tuple(vars(d).values()) for d in inputs.devices)
    out["cohorts"] = sorted(inputs.cohorts)
    out["steps"], out["previous_steps"] = list(inputs.steps), list(inputs.previous_steps)
    return out


def test_outstanding_stamps_and_rewards(app: FastAPI, client: TestClient, shop: Shop) -> None:
    tokens = [new_card(client) for _ in range(4)]
    for token, count in zip(tokens, (10, 9, 3, 10), strict=True):
        assert stamp(client, shop, token, count=count).status_code == 201
    assert redeem(client, shop, tokens[3]).status_code == 201  # back to no stamps
    with Session(app.state.engine) as session:
        got = service._outstanding(session, shop.merchant_id)
        assert got == kpis.Outstanding(
            stamps=22, rewards=1, cards_with_stamps=3, cards_with_rewards=1
        )
        # The goal is read when the page is: a new goal changes what is due at once.
        program = session.get(Program, shop.program_id)
        assert program is not None
        program.stamps_required = 3
        session.add(program)
        session.commit()
        got = service._outstanding(session, shop.merchant_id)
    assert got == kpis.Outstanding(stamps=22, rewards=7, cards_with_stamps=3, cards_with_rewards=3)


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        (None, date(2026, 11, 1), "period-dates"),
        (date(2026, 11, 2), date(2026, 11, 1), "period-order"),
        (date(2026, 12, 1), date(2026, 12, 5), "period-future"),
        (date(2023, 1, 1), date(2026, 11, 1), "period-length"),
    ],
)
def test_a_bad_period_is_a_clear_422(
    client: TestClient, shop: Shop, start: date | None, end: date | None, code: str
) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    params = {k: v.isoformat() for k, v in (("start", start), ("end", end)) if v}
    response = client.get("/api/v1/merchant/kpis", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_the_kpi_api_needs_an_owner_and_shows_only_their_shop(
    app: FastAPI, client: TestClient, clock: Clock, shop: Shop, other_shop: Shop
) -> None:
    assert client.get("/api/v1/merchant/kpis").status_code == 401
    # 12 cards at the shop, 3 of them also at the other shop, which has 20 more.
    tokens = [new_card(client) for _ in range(32)]
    for token in tokens[:12]:
        assert stamp(client, shop, token).status_code == 201
    for token in tokens[9:]:
        assert stamp(client, other_shop, token).status_code == 201
    log_in(client, shop.owner_email, shop.owner_password)
    body = client.get("/api/v1/merchant/kpis?period=30d").json()
    assert body["k"] == 10
    shown = {"value": 12, "suppressed": False, "reason": None}
    assert body["headline"]["cards"]["current"] == shown
    assert body["headline"]["new_cards"]["current"]["value"] == 12
    assert body["headline"]["visits"]["current"]["value"] == 12
    # The shop's local date, not the UTC one (they differ for an hour or two every night).
    assert body["period"]["end"] == clock.now.astimezone(VIENNA).date().isoformat()
    assert [d["label"] for d in body["devices"]] == ["Till 1"]
    # The other shop's owner sees the other shop's 23 cards, whatever they ask for.
    with TestClient(app) as other_browser:
        log_in(other_browser, other_shop.owner_email, other_shop.owner_password)
        asked = other_browser.get("/api/v1/merchant/kpis", params={"merchant": shop.slug})
    assert asked.json()["headline"]["cards"]["current"]["value"] == 23


def test_the_kpi_api_hides_small_groups(client: TestClient, shop: Shop) -> None:
    for _ in range(9):
        assert stamp(client, shop, new_card(client)).status_code == 201
    log_in(client, shop.owner_email, shop.owner_password)
    body = client.get("/api/v1/merchant/kpis").json()
    hidden = {"value": None, "suppressed": True, "reason": "fewer-than-k"}
    assert body["headline"]["cards"]["current"] == hidden
    assert body["headline"]["visits"]["current"] == hidden


def test_custom_period_in_local_days(app: FastAPI, shop: Shop) -> None:
    today = date(2026, 11, 2)
    start, end = date(2026, 10, 1), today + timedelta(days=9)
    period = service.choose_period(choice="custom", today=today, start=start, end=end)
    # The end is clipped to today: a period never runs into the future.
    assert period == kpis.Period(day_number(date(2026, 10, 1)), day_number(today) + 1)
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        late = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)  # already 3 November in Vienna
        assert service.today_of(merchant, late) == date(2026, 11, 3)


def test_the_kpi_api_hides_a_busy_hour_of_few_cards(
    client: TestClient, clock: Clock, shop: Shop
) -> None:
    """9 regulars every Monday at 8 (local) make 36 visits; 12 passers-by come on a Tuesday at
    11. The Monday cell is about 9 cards and stays hidden, however many visits it holds."""
    regulars = [new_card(client) for _ in range(9)]
    for week in range(4):
        clock.now = datetime(2026, 11, 2, 7, 10, tzinfo=UTC) + timedelta(weeks=week)
        for token in regulars:
            assert stamp(client, shop, token).status_code == 201
    clock.now = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)  # 11 o'clock in Vienna
    for _ in range(12):
        assert stamp(client, shop, new_card(client)).status_code == 201
    clock.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    log_in(client, shop.owner_email, shop.owner_password)
    body = client.get("/api/v1/merchant/kpis?period=30d").json()
    assert body["headline"]["visits"]["current"]["value"] == 48
    busiest = body["busiest"]
    assert busiest["hours"] == [8, 9, 10, 11]
    hidden = {"value": None, "suppressed": True, "reason": "fewer-than-k"}
    assert busiest["cells"][0][0] == hidden
    assert busiest["weekdays"][0] == hidden
    assert busiest["cells"][1][3]["value"] == 12
    # The one till saw all 21 cards.
    (device,) = body["devices"]
    assert device["cards"]["value"] == 21 and device["scans"]["value"] == 48


def test_the_owner_dashboard_covers_the_30_local_days_up_to_today(
    app: FastAPI, clock: Clock, shop: Shop
) -> None:
    clock.now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # the same UTC day as `late` below
    cards = [issue_card(app), issue_card(app)]
    for card in cards:
        book(app, shop, card, count=2)
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        for card in cards:
            feedback.give_feedback(
                session=session, keyring=app.state.keyring, merchant=merchant,
                card_id=card.card_id, fields=FeedbackFields(rating=4), now=clock(),
                limits=feedback.Limits(), attempts=feedback.AttemptLimiter(),
            )  # fmt: skip
        session.commit()
        # 23:30 UTC is already the next day in Vienna.
        late = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)
        shown = service.owner_dashboard(session=session, merchant=merchant, now=late, k=2)
        hidden = service.owner_dashboard(session=session, merchant=merchant, now=late, k=10)
    today = date(2026, 11, 3)
    assert shown.today == today
    assert shown.period == kpis.Period(day_number(today) - 29, day_number(today) + 1)
    assert shown.figures.period == shown.period
    assert shown.figures.headline["visits"].current.value == 2
    assert shown.figures.headline["stamps"].current.value == 4
    assert (shown.feedback["count"], shown.feedback["average_rating"]) == (2, 4)
    # Two cards are fewer than k = 10: the numbers are kept from the owner.
    assert hidden.figures.headline["visits"].current.hidden
    assert hidden.feedback["count"] is None and hidden.feedback["suppressed"]


def test_the_owner_dashboard_refuses_a_period_that_ends_before_it_starts(
    app: FastAPI, clock: Clock, shop: Shop
) -> None:
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        with pytest.raises(PeriodError) as refused:
            service.owner_dashboard(
                session=session, merchant=merchant, now=clock(), k=10, choice="custom",
                start=date(2026, 10, 20), end=date(2026, 10, 10),
            )  # fmt: skip
    assert (refused.value.status, refused.value.code) == (422, "period-order")
