"""What leaves the dashboard keeps its promises (docs/design.md, privacy model 5 and 6), proved
on a real database with everything the shop's owner can fetch.

Feedback is anonymous: the shop sees its day, never its time, in an order that says nothing
about its time, and never the visit it was verified by. The exports hold daily counts only,
suppressed below k cards like the dashboard: no row per entry, no pseudonym, no time of day.
So in a quiet shop, where a few cards come a day, a feedback cannot be matched to the visits
of the card that gave it.
"""

import csv
import io
import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.feedback.models import Feedback
from app.ledger.models import LedgerEntry
from app.tokens import crypto
from tests.helpers.api import give, new_card, stamp
from tests.helpers.clock import Clock
from tests.helpers.pages import HTML, log_in_owner
from tests.helpers.shops import Shop

VIENNA = ZoneInfo("Europe/Vienna")  # every test shop's zone


def local(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), VIENNA)


def days_before_today(clock: Clock, days: int) -> date:
    return clock().astimezone(VIENNA).date() - timedelta(days=days)


def everything_the_owner_sees(client: TestClient, day: date) -> dict[str, str]:
    """Every page, export and API answer that shows the shop's visits or feedback."""
    paths = {
        "inbox": "/merchant/feedback",
        "dashboard": "/merchant/dashboard",
        "kpis": "/api/v1/merchant/kpis",
        "exports": "/merchant/exports",
        "daily": "/merchant/exports/daily.csv",
        "that day": f"/merchant/exports/daily.csv?start={day}&end={day}",
    }
    seen = {}
    for name, path in paths.items():
        response = client.get(path, headers=HTML)
        assert response.status_code == 200, (path, response.text)
        seen[name] = response.text
    # No row-level export to match anything against.
    assert client.get("/merchant/exports/ledger.csv", headers=HTML).status_code == 404
    return seen


def test_a_feedback_cannot_be_matched_to_the_visits_of_its_card(
    app: FastAPI, client: TestClient, clock: Clock, shop: Shop
) -> None:
    day = days_before_today(clock, 1)
    writer, others = new_card(client), [new_card(client) for _ in range(2)]
    # A quiet shop: three cards in three days, at times no other figure has.
    visits = [
        (writer, local(day - timedelta(days=2), 8, 13, 21)),
        (others[0], local(day - timedelta(days=1), 17, 53, 2)),
        (others[1], local(day, 9, 7, 44)),
        (writer, local(day, 14, 37, 9)),
    ]
    for token, at in visits:
        clock.now = at
        assert stamp(client, shop, token).status_code == 201
    clock.now = local(day, 14, 41, 30)  # four minutes after the writer's visit
    assert give(client, writer, shop, rating=2, comment="Zu laut").status_code == 201
    clock.now = local(day + timedelta(days=1), 9, 0)
    log_in_owner(client, shop)
    seen = everything_the_owner_sees(client, day)

    with Session(app.state.engine) as session:
        entries = session.exec(select(LedgerEntry).order_by(col(LedgerEntry.created_at))).all()
        (feedback,) = session.exec(select(Feedback)).all()
    holders = {
        crypto.holder_for(
            app.state.keyring, crypto.verify_token(app.state.keyring, t), shop.merchant_id
        )
        for t in (writer, *others)
    }
    # No field joins them: no entry id (nor the visit the feedback was verified by), no holder.
    joins = {e.id for e in entries} | {feedback.visit_entry_id} | holders
    for name, text in seen.items():
        for value in joins:
            assert value not in text, (name, value)
    # No time joins them: neither the feedback's time nor any visit's, to the minute.
    moments = [at for _, at in visits] + [local(day, 14, 41, 30)]
    for name, text in seen.items():
        for at in moments:
            for shown in (at.strftime("%H:%M"), at.astimezone(VIENNA).isoformat()[:16]):
                assert shown not in text, (name, shown)
    # The inbox says the day, and nothing finer.
    assert f'<time datetime="{day}">' in seen["inbox"]
    assert "Zu laut" in seen["inbox"]
    # Each day's visits are about fewer than k cards: the export gives no count to match.
    rows = list(csv.DictReader(io.StringIO(seen["daily"])))
    assert [r["day"] for r in rows] == [str(day - timedelta(days=n)) for n in (2, 1, 0)]
    assert {r["visits"] for r in rows} == {"<10"}
    assert {r["scans"] for r in rows} == {"<10"}


def test_the_inbox_orders_a_day_by_chance_not_by_time(
    app: FastAPI, client: TestClient, clock: Clock, shop: Shop
) -> None:
    """Newest day first; within a day by the feedback's random id, so the order tells nothing
    about when each was written. Pages are cut from that order, across days."""
    first, second = days_before_today(clock, 2), days_before_today(clock, 1)
    for day, count in ((first, 16), (second, 14)):
        for n in range(count):
            token = new_card(client)
            clock.now = local(day, 9, 0) + timedelta(minutes=17 * n)
            assert stamp(client, shop, token).status_code == 201
            clock.advance(30)
            assert give(client, token, shop, rating=1 + n % 5).status_code == 201
    clock.now = local(second + timedelta(days=1), 9, 0)
    with Session(app.state.engine) as session:
        stored = session.exec(select(Feedback)).all()
    by_time = [f.id for f in sorted(stored, key=lambda f: f.created_at, reverse=True)]
    log_in_owner(client, shop)
    shown = []
    for page in (0, 1):
        html = client.get(f"/merchant/feedback?page={page}", headers=HTML).text
        shown += re.findall(r'<li class="panel item[^"]*" id="f-([0-9a-f]+)"', html)
    assert len(shown) == 30
    assert shown == sorted_by_day_then_id(stored)
    assert shown != by_time


def sorted_by_day_then_id(feedback: list[Feedback]) -> list[str]:
    def day(f: Feedback) -> date:
        at = f.created_at if f.created_at.tzinfo else f.created_at.replace(tzinfo=ZoneInfo("UTC"))
        return at.astimezone(VIENNA).date()

    return [f.id for f in sorted(feedback, key=lambda f: (-day(f).toordinal(), f.id))]


def test_the_daily_export_hides_what_is_about_fewer_than_k_cards(
    app: FastAPI, client: TestClient, clock: Clock, shop: Shop
) -> None:
    """k = 10: a busy day shows its counts, a quiet one "<10"; a busy day is hidden too where
    the quiet one could be worked out from the period's total (on the dashboard)."""
    days = [days_before_today(clock, n) for n in (3, 2, 1)]
    for day, cards in zip(days, (12, 3, 11), strict=True):
        clock.now = local(day, 10, 0)
        for _ in range(cards):
            clock.advance(1)
            assert stamp(client, shop, new_card(client)).status_code == 201
    clock.now = local(days[-1] + timedelta(days=1), 9, 0)
    log_in_owner(client, shop)
    response = client.get(f"/merchant/exports/daily.csv?start={days[0]}&end={days[-1]}")
    rows = {r["day"]: r for r in csv.DictReader(io.StringIO(response.text))}
    figures = ("visits", "new_cards", "scans", "stamps")
    busy, quiet, hidden = (rows[str(d)] for d in days)
    assert [busy[f] for f in figures] == ["12"] * 4
    assert [quiet[f] for f in figures] == ["<10"] * 4
    # 12 + 3 + 11 = 26 visits on the dashboard: the 11 goes too, or the 3 would follow.
    assert [hidden[f] for f in figures] == ["hidden"] * 4
    # Nothing redeemed: a known 0 gives nothing away.
    assert {r["redemptions"] for r in rows.values()} == {"0"}
