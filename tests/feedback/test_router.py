"""The feedback API: a visit opens it, one per visit, the edit window, limits, replies."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from app.feedback import service
from app.feedback.dependencies import feedback_limits
from app.feedback.models import Feedback, ReviewClick
from tests.helpers.api import give, new_card, redeem, stamp, visited_card, void
from tests.helpers.clock import Clock
from tests.helpers.shops import Shop, make_shop

DAY = 86_400


def feedback_count(app: FastAPI) -> int:
    with Session(app.state.engine) as session:
        return session.exec(select(func.count()).select_from(Feedback)).one()


def test_feedback_after_a_visit_is_stored_by_holder_and_offers_the_review_link(
    client: TestClient, shop: Shop, app: FastAPI
) -> None:
    token = visited_card(client, shop)
    response = give(client, token, shop, rating=5, recommend=9, comment="Sehr gut!",
                    tags=["service", "quality"])  # fmt: skip
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["rating"] == 5 and body["recommend"] == 9
    assert body["comment"] == "Sehr gut!" and body["tags"] == ["service", "quality"]
    assert body["removed"] == [] and body["reply"] is None
    assert body["merchant"] == {"slug": shop.slug, "name": "Café Sonne"}
    with Session(app.state.engine) as session:
        row = session.exec(select(Feedback)).one()
    # Only the per-merchant pseudonym: neither the token nor anything derived across shops.
    assert len(row.holder) == 32 and row.holder not in token
    assert row.merchant_id == shop.merchant_id


def test_without_a_visit_the_api_answers_403_and_stores_nothing(
    client: TestClient, shop: Shop, other_shop: Shop, app: FastAPI
) -> None:
    token = new_card(client)
    response = give(client, token, shop, comment="never been there")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "no-recent-visit"
    # A visit at another shop does not open feedback here.
    assert stamp(client, other_shop, token).status_code == 201
    assert give(client, token, shop).status_code == 403
    assert feedback_count(app) == 0


def test_a_visit_counts_for_30_days_and_an_undone_stamp_is_no_visit(
    client: TestClient, shop: Shop, clock: Clock
) -> None:
    token = new_card(client)
    entry = stamp(client, shop, token).json()["entry_id"]
    assert void(client, shop, entry).status_code == 201
    assert give(client, token, shop).status_code == 403
    clock.advance(120)
    assert stamp(client, shop, token).status_code == 201
    clock.advance(30 * DAY + 1)
    assert give(client, token, shop).status_code == 403
    # A redemption is a visit too.
    late = new_card(client)
    for _ in range(10):
        assert stamp(client, shop, late).status_code == 201
        clock.advance(61)
    clock.advance(31 * DAY)
    assert give(client, late, shop).status_code == 403
    assert redeem(client, shop, late).status_code == 201
    assert give(client, late, shop).status_code == 201


def test_one_feedback_per_visit_then_a_new_visit_opens_a_new_one(
    client: TestClient, shop: Shop, clock: Clock, app: FastAPI
) -> None:
    token = visited_card(client, shop)
    first = give(client, token, shop, rating=2)
    assert first.status_code == 201
    again = give(client, token, shop, rating=5)
    assert again.status_code == 409
    assert again.json()["code"] == "already-given"
    assert again.json()["feedback_id"] == first.json()["id"]
    clock.advance(3600)
    assert stamp(client, shop, token).status_code == 201
    assert give(client, token, shop, rating=5).status_code == 201
    assert feedback_count(app) == 2


def test_feedback_can_be_changed_for_24_hours_by_the_same_card_only(
    client: TestClient, shop: Shop, clock: Clock
) -> None:
    token = visited_card(client, shop)
    given = give(client, token, shop, rating=2, comment="kalt").json()
    edit = {"token": token, "rating": 3, "comment": "kalt, aber nett: 0664 1234567"}
    stranger = visited_card(client, shop)
    refused = client.put(f"/api/v1/feedback/{given['id']}", json={**edit, "token": stranger})
    assert refused.status_code == 404
    changed = client.put(f"/api/v1/feedback/{given['id']}", json=edit)
    assert changed.status_code == 200, changed.text
    assert changed.json()["rating"] == 3
    assert changed.json()["comment"] == "kalt, aber nett: [removed]"
    assert changed.json()["removed"] == ["phone"]
    clock.advance(DAY)
    late = client.put(f"/api/v1/feedback/{given['id']}", json=edit)
    assert late.status_code == 403
    assert late.json()["code"] == "edit-window-closed"
    assert client.put("/api/v1/feedback/nope", json=edit).status_code == 404


def test_personal_data_is_removed_before_storing_and_reported(
    client: TestClient, shop: Shop, app: FastAPI
) -> None:
    token = visited_card(client, shop)
    comment = "Ruft mich an +43 660 1234567 oder max@example.at, 3,50 € am 23.11.2026"
    body = give(client, token, shop, rating=2, comment=comment).json()
    assert body["comment"] == "Ruft mich an [removed] oder [removed], 3,50 € am 23.11.2026"
    assert body["removed"] == ["email", "phone"]
    with Session(app.state.engine) as session:
        stored = session.exec(select(Feedback.comment)).one()
    assert "1234567" not in stored and "example.at" not in stored


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"rating": 0}, 422),
        ({"rating": 6}, 422),
        ({"recommend": 11}, 422),
        ({"comment": "x" * 501}, 422),
        ({"tags": ["free coffee"]}, 422),
        ({"tags": ["service"] * 11}, 422),
        ({"merchant": "no-such-shop"}, 404),
        ({"token": "not a card"}, 422),
        ({"extra": 1}, 422),
    ],
)
def test_bad_input_is_a_clear_problem_and_stores_nothing(
    client: TestClient, shop: Shop, app: FastAPI, change: dict[str, object], status: int
) -> None:
    token = visited_card(client, shop)
    body = {"token": token, "merchant": shop.slug, "rating": 4, **change}
    response = client.post("/api/v1/feedback", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert feedback_count(app) == 0


def test_a_comment_of_500_characters_with_crlf_line_breaks_is_fine(
    client: TestClient, shop: Shop
) -> None:
    token = visited_card(client, shop)
    comment = ("a" * 99 + "\r\n") * 5  # 505 typed, 500 once a line break counts once
    response = give(client, token, shop, comment=comment)
    assert response.status_code == 201, response.text
    assert len(response.json()["comment"]) == 499  # the last line break is trimmed


def limit_to(app: FastAPI, **limits: int) -> None:
    chosen = service.Limits(**limits)
    app.dependency_overrides[feedback_limits] = lambda: chosen


def test_rate_limits_per_card_and_per_merchant_store_nothing(
    client: TestClient, shop: Shop, clock: Clock, app: FastAPI
) -> None:
    limit_to(app, per_card_day=2, per_merchant_hour=3)
    token = visited_card(client, shop)
    for _ in range(2):
        assert give(client, token, shop).status_code == 201
        clock.advance(120)
        assert stamp(client, shop, token).status_code == 201
    refused = give(client, token, shop)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert feedback_count(app) == 2
    # The shop's hourly cap: the third feedback is taken, the fourth is not.
    assert give(client, visited_card(client, shop), shop).status_code == 201
    assert give(client, visited_card(client, shop), shop).status_code == 429
    assert feedback_count(app) == 3
    clock.advance(3601)
    assert give(client, visited_card(client, shop), shop).status_code == 201


def test_attempts_are_limited_per_card_even_when_refused(
    client: TestClient, shop: Shop, clock: Clock, app: FastAPI
) -> None:
    limit_to(app, attempts=3, attempts_seconds=600)
    token = new_card(client)
    statuses = [give(client, token, shop).status_code for _ in range(4)]
    assert statuses == [403, 403, 403, 429]
    # Another card is not held back by this one.
    assert give(client, visited_card(client, shop), shop).status_code == 201
    clock.advance(601)
    assert give(client, token, shop).status_code == 403


def test_edits_are_limited(client: TestClient, shop: Shop, app: FastAPI) -> None:
    limit_to(app, edits=2)
    token = visited_card(client, shop)
    given = give(client, token, shop).json()
    url = f"/api/v1/feedback/{given['id']}"
    statuses = [client.put(url, json={"token": token, "rating": r}).status_code for r in (1, 2, 3)]
    assert statuses == [200, 200, 429]


def reply_to(app: FastAPI, feedback_id: str, text: str, clock: Clock) -> None:
    with Session(app.state.engine) as session:
        merchant_id = session.get(Feedback, feedback_id).merchant_id  # type: ignore[union-attr]
        service.reply(session=session, merchant_id=merchant_id, feedback_id=feedback_id,
                      text=text, now=clock())  # fmt: skip
        session.commit()


def test_a_reply_shows_on_the_right_card_only_until_read(
    client: TestClient, shop: Shop, other_shop: Shop, clock: Clock, app: FastAPI
) -> None:
    mine = visited_card(client, shop)
    assert stamp(client, other_shop, mine).status_code == 201
    theirs = visited_card(client, shop)
    given = give(client, mine, shop, rating=2, comment="Zu laut").json()
    give(client, theirs, shop, rating=5)
    clock.advance(600)
    reply_to(app, given["id"], "Danke, wir drehen die Musik leiser.", clock)

    view = client.get(f"/api/v1/cards/{mine}/feedback").json()
    by_slug = {m["slug"]: m for m in view["merchants"]}
    assert set(by_slug) == {shop.slug, other_shop.slug}
    sonne = by_slug[shop.slug]
    assert sonne["name"] == "Café Sonne"
    assert sonne["can_give_feedback"] is False and sonne["can_edit_feedback"] is True
    assert sonne["feedback_url"] == f"/c/{mine}/feedback/{shop.slug}"
    assert [(r["text"], r["unread"]) for r in sonne["replies"]] == [
        ("Danke, wir drehen die Musik leiser.", True)
    ]
    assert sonne["replies"][0]["in_reply_to"]["comment"] == "Zu laut"
    gruber = by_slug[other_shop.slug]
    assert gruber["can_give_feedback"] is True and gruber["replies"] == []
    # The other card at the same shop sees no reply.
    other_view = client.get(f"/api/v1/cards/{theirs}/feedback").json()
    assert [m["replies"] for m in other_view["merchants"]] == [[]]
    # A card that never visited sees nothing at all.
    assert client.get(f"/api/v1/cards/{new_card(client)}/feedback").json() == {"merchants": []}

    marked = client.post(f"/api/v1/cards/{mine}/feedback/read", json={"merchant": shop.slug})
    assert marked.json() == {"marked": 1}
    view = client.get(f"/api/v1/cards/{mine}/feedback").json()
    assert [r["unread"] for m in view["merchants"] for r in m["replies"]] == [False]
    # A changed reply is new again.
    clock.advance(60)
    reply_to(app, given["id"], "Update: neue Lautsprecher.", clock)
    view = client.get(f"/api/v1/cards/{mine}/feedback").json()
    assert [r["unread"] for m in view["merchants"] for r in m["replies"]] == [True]
    assert client.post(f"/api/v1/cards/{mine}/feedback/read").json() == {"marked": 1}


def test_card_endpoints_refuse_bad_and_deleted_cards(client: TestClient, shop: Shop) -> None:
    assert client.get("/api/v1/cards/NOTATOKEN/feedback").status_code == 404
    token = visited_card(client, shop)
    assert client.delete(f"/api/v1/cards/{token}").status_code == 204
    assert client.get(f"/api/v1/cards/{token}/feedback").status_code == 410
    assert give(client, token, shop).status_code == 410


@pytest.mark.parametrize("rating", [1, 5])
def test_the_review_link_is_offered_whatever_the_rating_and_clicks_are_counted(
    client: TestClient, app: FastAPI, clock: Clock, rating: int
) -> None:
    place = "ChIJN1t_tDeuEmsRUsoyG83frY4"
    shop = make_shop(app, "Café Mond", review_url=place)
    body = give(client, visited_card(client, shop), shop, rating=rating).json()
    assert body["review_link"] == f"/r/{shop.slug}"
    for _ in range(2):
        response = client.get(body["review_link"], follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == (
            f"https://search.google.com/local/writereview?placeid={place}"
        )
    with Session(app.state.engine) as session:
        rows = session.exec(select(ReviewClick)).all()
    # Per shop and day, and nothing else: no card, no time of day, no address.
    assert [(r.merchant_id, r.day, r.clicks) for r in rows] == [
        (shop.merchant_id, clock().astimezone(ZoneInfo("Europe/Vienna")).date(), 2)
    ]
    assert set(ReviewClick.model_fields) == {"merchant_id", "day", "clicks"}
    figures = service_figures(app, shop, clock)
    assert figures["review_clicks"] == 2


def service_figures(app: FastAPI, shop: Shop, clock: Clock) -> dict[str, object]:
    with Session(app.state.engine) as session:
        return service.figures(session=session, merchant_id=shop.merchant_id,
                               start=clock() - timedelta(days=30), end=clock() + timedelta(1),
                               k=10)  # fmt: skip


def test_no_review_link_without_a_review_page(client: TestClient, shop: Shop) -> None:
    body = give(client, visited_card(client, shop), shop).json()
    assert body["review_link"] is None
    assert client.get(f"/r/{shop.slug}", follow_redirects=False).status_code == 404
    assert client.get("/r/nobody", follow_redirects=False).status_code == 404


def test_review_targets() -> None:
    assert service.review_target("https://g.page/r/abc/review") == "https://g.page/r/abc/review"
    assert service.review_target(" ChIJN1t_tDeuEmsRUsoyG83frY4 ") == (
        "https://search.google.com/local/writereview?placeid=ChIJN1t_tDeuEmsRUsoyG83frY4"
    )
    for bad in ("", "javascript:alert(1)", "ftp://x", "short", "https://x y"):
        assert service.review_target(bad) is None


def test_figures_for_the_dashboard_match_the_stored_feedback(
    client: TestClient, shop: Shop, clock: Clock, app: FastAPI
) -> None:
    ratings = [5, 5, 4, 4, 4, 3, 2, 1, 5, 4]
    for rating in ratings:
        give(client, visited_card(client, shop), shop, rating=rating, recommend=rating * 2)
    figures = service_figures(app, shop, clock)
    assert figures["count"] == 10
    assert figures["average_rating"] == pytest.approx(3.7)
    assert figures["csat"] == pytest.approx(0.7)
    # recommend = 2 x rating: 10,10,8,8,8,6,4,2,10,8 -> 3 promoters, 4 passives, 3 detractors.
    nps = figures["nps"]
    assert isinstance(nps, dict) and nps["score"] == 0


def test_figures_of_a_shop_with_too_little_feedback_are_suppressed(
    client: TestClient, shop: Shop, clock: Clock, app: FastAPI
) -> None:
    for rating in (1, 1, 5):
        give(client, visited_card(client, shop), shop, rating=rating)
    figures = service_figures(app, shop, clock)
    assert figures["suppressed"] and figures["csat"] is None and figures["count"] is None
