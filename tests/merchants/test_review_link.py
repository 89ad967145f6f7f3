"""The shop's public review link passes one check wherever it is set or followed: the profile
form, `treu merchant create`, the service, and the /r/{slug} redirect (SQLite and PostgreSQL).

The link ends up in a Location header and in an href: a `javascript:` address would run in the
customer's browser, and a CR/LF would split the header.
"""

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.merchants.exceptions import MerchantError
from app.merchants.models import Merchant
from app.merchants.service import review_url_from
from tests.helpers.cli import Treu, hermetic_env
from tests.helpers.database import database_text
from tests.helpers.pages import HTML, form_token, log_in_owner
from tests.helpers.shops import Shop

BAD = (
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)//https://x.example",
    "http://example.org/review",
    "data:text/html,<script>alert(1)</script>",
    "https://g.page/r/abc\r\nSet-Cookie: session=stolen",
    "https://g.page/r/abc\nX: y",
    "https://g.page/r/abc\r",
    "https://g.page/r/abc\x00",
    "https://g.page/r/a b",
    'https://g.page/r/"onmouseover="alert(1)',
    "https://g.page/r/<script>",
    "https://user@evil.example",
)
GOOGLE = "https://search.google.com/local/writereview?placeid="


def test_the_check_refuses_other_schemes_and_control_characters() -> None:
    for link in BAD:
        with pytest.raises(MerchantError):
            review_url_from(link)
    assert review_url_from("") == ""
    assert review_url_from(" https://g.page/r/abc/review?x=1&y=%20#top ") == (
        "https://g.page/r/abc/review?x=1&y=%20#top"
    )
    assert review_url_from("ChIJN1t_tDeuEmsRUsoyG83frY4") == GOOGLE + "ChIJN1t_tDeuEmsRUsoyG83frY4"
    # What it stores passes it again: the redirect checks the stored value with it.
    assert review_url_from(review_url_from("ChIJN1t_tDeuEmsRUsoyG83frY4")).startswith(GOOGLE)


@pytest.mark.parametrize("link", ["javascript:alert(1)", "https://g.page/r/abc\r\nX-Evil: 1"])
def test_treu_merchant_create_refuses_a_bad_link_and_writes_nothing(
    database_url: str, tmp_path: Path, link: str
) -> None:
    treu = Treu(tmp_path / "data", database_url, hermetic_env())
    treu("init")
    before = database_text(database_url)
    result = treu(
        "merchant", "create", "--name", "Café Sonne", "--stamps-required", "10",
        "--reward", "1 coffee", "--review-url", link, "--json", ok=False,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "review link" in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""
    assert database_text(database_url) == before


def test_treu_merchant_create_stores_a_place_id_as_googles_link(
    database_url: str, tmp_path: Path
) -> None:
    treu = Treu(tmp_path / "data", database_url, hermetic_env())
    treu("init")
    made = treu.json(
        "merchant", "create", "--name", "Café Sonne", "--stamps-required", "10",
        "--reward", "1 coffee", "--review-url", "ChIJN1t_tDeuEmsRUsoyG83frY4",
    )  # fmt: skip
    with treu.session() as session:
        merchant = session.get(Merchant, 1)
        assert merchant is not None and merchant.slug == made["slug"]
        assert merchant.review_url == GOOGLE + "ChIJN1t_tDeuEmsRUsoyG83frY4"


def test_the_profile_form_refuses_a_link_with_a_line_break(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    log_in_owner(client, shop)
    token = form_token(client.get("/merchant/program", headers=HTML).text)
    data = {"shop_name": "Café Sonne", "city": "", "category": "", "locale": "de",
            "review_link": "https://g.page/r/abc\r\nX-Evil: 1", "csrf_token": token}  # fmt: skip
    response = client.post("/merchant/profile", data=data, headers=HTML, follow_redirects=False)
    assert response.status_code == 422
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None and merchant.review_url == ""


def test_the_redirect_never_follows_a_link_stored_unchecked(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    """A link an older `treu merchant create` stored without the check is not followed."""
    for link in ("javascript:alert(1)", "https://g.page/r/abc\r\nX-Evil: 1"):
        with Session(app.state.engine) as session:
            merchant = session.get(Merchant, shop.merchant_id)
            assert merchant is not None
            merchant.review_url = link
            session.add(merchant)
            session.commit()
        response = client.get(f"/r/{shop.slug}", follow_redirects=False)
        assert response.status_code == 404
        assert "location" not in response.headers
