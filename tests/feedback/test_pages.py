"""Feedback pages over HTTP: the card's form and conversation, the merchant's inbox."""

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.feedback.models import Feedback
from tests.helpers.api import give, new_card, visited_card
from tests.helpers.clock import Clock
from tests.helpers.pages import HTML, form_token, log_in_owner
from tests.helpers.shops import Shop, make_shop

MARKUP = "<script>alert('x')</script><b>laut</b> & <img src=x onerror=alert(1)>"


def page_of(client: TestClient, token: str, shop: Shop, lang: str = "en") -> str:
    response = client.get(f"/c/{token}/feedback/{shop.slug}?lang={lang}", headers=HTML)
    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["cache-control"]
    return response.text


def test_the_form_after_a_visit_in_both_languages(client: TestClient, shop: Shop) -> None:
    token = visited_card(client, shop)
    html = page_of(client, token, shop)
    assert html.count('name="rating"') == 5 and html.count('name="recommend"') == 11
    assert 'maxlength="500"' in html
    assert "Waiting time" in html and "Send feedback" in html
    german = page_of(client, token, shop, "de")
    assert "Wartezeit" in german and "Feedback senden" in german and "Sehr gut" in german


def test_no_form_without_a_visit(client: TestClient, shop: Shop) -> None:
    html = page_of(client, new_card(client), shop)
    assert 'name="rating"' not in html
    assert "Feedback opens after a visit" in html


def test_bad_card_or_shop_is_a_friendly_404(client: TestClient, shop: Shop) -> None:
    token = visited_card(client, shop)
    assert client.get(f"/c/{token}/feedback/nowhere", headers=HTML).status_code == 404
    response = client.get(f"/c/NOTACARD/feedback/{shop.slug}", headers=HTML)
    assert response.status_code == 404 and "<h1>" in response.text


@pytest.mark.parametrize("rating", ["1", "5"])
def test_the_form_without_javascript_thanks_and_invites_a_public_review(
    client: TestClient, app: FastAPI, rating: str
) -> None:
    shop = make_shop(app, "Café Mond", review_url="https://g.page/r/cafe-mond/review")
    token = visited_card(client, shop)
    form = {"rating": rating, "recommend": "", "comment": "Ruf an: 0660 1234567",
            "tags": ["price", "service"]}  # fmt: skip
    sent = client.post(f"/c/{token}/feedback/{shop.slug}", data=form, headers=HTML,
                       follow_redirects=False)  # fmt: skip
    assert sent.status_code == 303
    html = client.get(sent.headers["location"], headers=HTML).text
    assert "Thank you!" in html
    assert "We removed a phone number from your comment" in html
    assert f'href="/r/{shop.slug}"' in html and "Write a public review" in html
    assert "earns no stamps" in html
    assert '<span class="removed">[removed]</span>' in html
    assert "0660" not in html
    # Still editable: the form is there, prefilled, with the feedback's id.
    with Session(app.state.engine) as session:
        stored = session.exec(select(Feedback)).one()
    assert f'name="feedback_id" value="{stored.id}"' in html
    assert stored.rating == int(rating) and stored.recommend is None
    assert stored.tags == '["price", "service"]'


def test_form_errors_are_shown_on_the_page(client: TestClient, shop: Shop, app: FastAPI) -> None:
    token = visited_card(client, shop)
    url = f"/c/{token}/feedback/{shop.slug}"
    no_rating = client.post(url, data={"comment": "hm"}, headers=HTML)
    assert no_rating.status_code == 422
    assert "Please choose how your visit was" in no_rating.text
    stranger = client.post(
        f"/c/{new_card(client)}/feedback/{shop.slug}?lang=de", data={"rating": "3"}, headers=HTML
    )
    assert stranger.status_code == 403
    assert "Feedback ist nach einem Besuch möglich" in stranger.text
    with Session(app.state.engine) as session:
        assert session.exec(select(Feedback)).all() == []


def test_markup_in_comments_and_replies_is_shown_as_text(
    client: TestClient, shop: Shop, clock: Clock
) -> None:
    token = visited_card(client, shop)
    given = give(client, token, shop, rating=2, comment=MARKUP).json()
    assert given["comment"] == MARKUP  # stored as typed: escaping is the page's job
    log_in_owner(client, shop)
    inbox = client.get("/merchant/feedback", headers=HTML).text
    for html in (inbox, page_of(client, token, shop)):
        assert "<script>alert" not in html and "<b>laut</b>" not in html and "<img" not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;b&gt;laut&lt;/b&gt;" in html
    csrf = form_token(inbox)
    client.post(f"/merchant/feedback/{given['id']}/reply",
                data={"text": "<i>Sorry</i>", "csrf_token": csrf}, headers=HTML)  # fmt: skip
    html = page_of(client, token, shop)
    assert "&lt;i&gt;Sorry&lt;/i&gt;" in html and "<i>Sorry" not in html


def test_the_inbox_needs_a_login(client: TestClient, shop: Shop) -> None:
    response = client.get("/merchant/feedback", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/merchant/login")


def inbox_items(html: str) -> list[str]:
    return re.findall(r'<li class="panel item[^"]*" id="f-([0-9a-f]+)"', html)


def test_inbox_newest_first_with_unread_markers_filters_and_a_reply_to_the_right_card(
    client: TestClient, shop: Shop, other_shop: Shop, clock: Clock, app: FastAPI
) -> None:
    alice, bob = visited_card(client, shop), visited_card(client, shop)
    first = give(client, alice, shop, rating=2, comment="Kaffee kalt", tags=["quality"]).json()
    # Newest day first (within a day the order is by chance: tests/test_exports_privacy.py).
    clock.advance(2 * 86_400)
    second = give(client, bob, shop, rating=5, comment="Super!").json()
    log_in_owner(client, shop)

    html = client.get("/merchant/feedback", headers=HTML).text
    assert inbox_items(html) == [second["id"], first["id"]]
    assert html.count('class="badge new"') == 2
    # Seen once, then no longer new.
    html = client.get("/merchant/feedback", headers=HTML).text
    assert 'class="badge new"' not in html

    assert inbox_items(client.get("/merchant/feedback?rating=2", headers=HTML).text) == [
        first["id"]
    ]
    assert inbox_items(client.get("/merchant/feedback?tag=quality", headers=HTML).text) == [
        first["id"]
    ]

    csrf = form_token(html)
    url = f"/merchant/feedback/{first['id']}/reply"
    forged = client.post(url, data={"text": "Sorry!"}, headers=HTML, follow_redirects=False)
    assert forged.status_code == 403
    sent = client.post(url, data={"text": "Sorry! Neue Maschine kommt.", "csrf_token": csrf},
                       headers=HTML, follow_redirects=False)  # fmt: skip
    assert sent.status_code == 303
    done = client.get(sent.headers["location"], headers=HTML).text
    assert "Your reply was sent" in done
    assert inbox_items(client.get("/merchant/feedback?unanswered=1", headers=HTML).text) == [
        second["id"]
    ]

    # On Alice's card under this shop, with a badge; not on Bob's.
    alice_page = page_of(client, alice, shop)
    assert "Sorry! Neue Maschine kommt." in alice_page
    assert '<span class="badge">New</span>' in alice_page
    assert "Sorry! Neue Maschine kommt." not in page_of(client, bob, shop)
    # The owner of another shop can neither see nor answer it.
    client.cookies.clear()
    log_in_owner(client, other_shop)
    assert inbox_items(client.get("/merchant/feedback", headers=HTML).text) == []
    other_csrf = form_token(client.get("/merchant/feedback", headers=HTML).text)
    stolen = client.post(url, data={"text": "Hi", "csrf_token": other_csrf}, headers=HTML)
    assert stolen.status_code == 404


def test_hiding_abuse_keeps_it_counted_and_flagged(
    client: TestClient, shop: Shop, app: FastAPI
) -> None:
    app.state.settings.k_anonymity = 2
    ids = [give(client, visited_card(client, shop), shop, rating=r).json()["id"] for r in (1, 5)]
    log_in_owner(client, shop)
    csrf = form_token(client.get("/merchant/feedback", headers=HTML).text)
    client.post(f"/merchant/feedback/{ids[0]}/hide", data={"hidden": "1", "csrf_token": csrf},
                headers=HTML)  # fmt: skip
    html = client.get("/merchant/feedback", headers=HTML).text
    assert "Hidden as abusive" in html and "Show again" in html
    assert re.search(r'id="fig-count">2<', html)
    assert re.search(r'id="fig-csat">50%<', html)
    assert "1 hidden feedback is counted." in html
    client.post(f"/merchant/feedback/{ids[0]}/hide", data={"hidden": "0", "csrf_token": csrf},
                headers=HTML)  # fmt: skip
    assert "Hidden as abusive" not in client.get("/merchant/feedback", headers=HTML).text


def test_small_groups_are_suppressed_on_the_inbox(client: TestClient, shop: Shop) -> None:
    give(client, visited_card(client, shop), shop, rating=1)
    log_in_owner(client, shop)
    html = client.get("/merchant/feedback?lang=de", headers=HTML).text
    assert re.search(r'id="fig-csat">weniger als 10<', html)
    assert re.search(r'id="fig-count">weniger als 10<', html)


def test_the_merchant_chooses_the_tags(client: TestClient, shop: Shop) -> None:
    log_in_owner(client, shop)
    csrf = form_token(client.get("/merchant/feedback", headers=HTML).text)
    saved = client.post("/merchant/feedback/tags", headers=HTML, data={
        "csrf_token": csrf, "defaults": ["service"], "own": "Kuchen\nMusik\nkuchen",
    })  # fmt: skip
    assert saved.status_code == 200 and "Your tags were saved" in saved.text
    html = page_of(client, visited_card(client, shop), shop)
    labels = re.findall(r'<label for="tag-\d+" class="chip">([^<]+)</label>', html)
    assert labels == ["Service", "Kuchen", "Musik"]
