"""Dates and times in the visitor's full locale (language and region from Accept-Language),
the card page's `lang`, the shop carried to a new card's page only in the URL fragment, the
card view's counts that tell one ledger change from another, and the German wording."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from app.web import i18n
from app.web.customer import date_format
from tests.helpers.api import new_card, redeem, stamp, void
from tests.helpers.shops import Shop

HTML = {"Accept": "text/html"}
VIENNA = ZoneInfo("Europe/Vienna")
MOMENT = datetime(2026, 12, 6, 21, 49, tzinfo=UTC)  # 22:49 in Vienna


def request_with(header: str, query: str = "", cookie: str = "") -> Request:
    headers = [(b"accept-language", header.encode())]
    if cookie:
        headers.append((b"cookie", f"lang={cookie}".encode()))
    scope = {"type": "http", "query_string": query.encode(), "headers": headers}
    return Request(scope)


@pytest.mark.parametrize(
    ("header", "query", "cookie", "expected"),
    [
        ("de-AT,de;q=0.9,en;q=0.8", "", "", "de_AT"),
        ("de-DE", "", "", "de_DE"),
        ("en-GB,en;q=0.9", "", "", "en_GB"),
        ("en-US", "", "", "en_US"),
        ("de", "", "", "de"),
        ("fr-FR, en;q=0.5", "", "", "en"),
        ("en-GB", "lang=de", "", "de"),  # chosen German: no German region asked for
        ("de-AT, en-GB;q=0.5", "lang=en", "", "en_GB"),  # the region of the chosen language
        ("en-US", "", "de", "de"),  # the remembered choice
        ("de-XX", "", "", "de"),  # a region Babel does not know
    ],
)
def test_the_locale_keeps_the_region_of_the_chosen_language(
    header: str, query: str, cookie: str, expected: str
) -> None:
    assert i18n.choose_locale(request_with(header, query, cookie)) == expected


@pytest.mark.parametrize(
    ("locale", "moment", "day"),
    [
        ("de_AT", "6. Dez. 2026, 22:49", "6. Dez. 2026"),
        ("de_DE", "6. Dez. 2026, 22:49", "6. Dez. 2026"),
        ("en_GB", "6 Dec 2026, 22:49", "6 Dec 2026"),
        ("en_US", "Dec 6, 2026, 10:49\u202fPM", "Dec 6, 2026"),
    ],
)
def test_days_and_moments_as_babel_writes_them(locale: str, moment: str, day: str) -> None:
    assert i18n.format_moment(MOMENT, VIENNA, locale) == moment
    assert i18n.format_day(date(2026, 12, 6), locale) == day


def test_the_card_pages_script_gets_babels_patterns_for_the_locale() -> None:
    german = date_format("de_AT")
    assert (german["pattern"], german["time"], german["joined"]) == (
        "{d}. {MMM} {y}", "{HH}:{mm}", "{date}, {time}",
    )  # fmt: skip
    assert german["months"][0] == "Jän." and german["months"][11] == "Dez."
    assert date_format("en_GB")["time"] == "{HH}:{mm}"
    american = date_format("en_US")
    assert (american["pattern"], american["time"]) == ("{MMM} {d}, {y}", "{h}:{mm}\u202f{a}")
    assert (american["am"], american["pm"]) == ("AM", "PM")


@pytest.mark.parametrize(
    ("header", "tag"), [("de-AT,de;q=0.9", "de-AT"), ("en-GB", "en-GB"), ("en-US", "en-US")]
)
def test_customer_pages_carry_the_full_language_tag(
    client: TestClient, card: str, header: str, tag: str
) -> None:
    for path in (f"/c/{card}", "/", "/merchants"):
        page = client.get(path, headers={**HTML, "Accept-Language": header})
        assert f'<html lang="{tag}">' in page.text, path


def test_a_card_from_a_shops_page_carries_the_shop_in_the_fragment_only(
    client: TestClient, shop: Shop
) -> None:
    poster = client.get(f"/m/{shop.slug}", headers=HTML).text
    assert '<script type="application/json" id="shop-data">' in poster
    assert '"stamps_required": 10' in poster and '"reward": "1 free coffee"' in poster
    made = client.post(f"/cards/new?shop={shop.slug}", follow_redirects=False)
    assert made.status_code == 303
    path, fragment = made.headers["location"].split("#")
    assert fragment == f"new&shop={shop.slug}"
    assert "shop" not in path
    # The server holds no balance for it anywhere: the empty card is drawn on the phone.
    token = path.rsplit("/", 1)[1]
    assert client.get(f"/api/v1/cards/{token}").json()["cards"] == []
    plain = client.post("/cards/new", follow_redirects=False)
    assert plain.headers["location"].endswith("#new")


def test_the_card_view_counts_what_tells_ledger_changes_apart(
    client: TestClient, shop: Shop
) -> None:
    token = new_card(client)
    assert stamp(client, shop, token, count=10).status_code == 201

    def counts() -> tuple[int, int, int]:
        c = client.get(f"/api/v1/cards/{token}").json()["cards"][0]
        return c["stamps"], c["lifetime_stamps"], c["redeemed"]

    assert counts() == (10, 10, 0)
    redemption = redeem(client, shop, token).json()
    assert counts() == (0, 10, 1)  # a redemption: stamps spent, none earned
    assert void(client, shop, redemption["entry_id"]).status_code == 201
    assert counts() == (10, 10, 0)  # undone: the stamps are back, nothing newly earned


def test_recovery_code_groups_are_marked_to_stay_whole(client: TestClient, card: str) -> None:
    page = client.get(f"/c/{card}", headers=HTML).text
    assert page.count('<span class="group">') == 14  # 7 groups, on the page and on the printout


def test_german_says_tap_as_a_native_speaker_would() -> None:
    german = i18n.translations("de")
    shop_page = german.ugettext(
        "One tap: no app, no sign-up, no personal data. "
        "The same card collects stamps at every shop on treu."
    )
    assert shop_page.startswith("Ein Fingertipp genügt:")
    for path in ("customer", "merchant", "common"):
        text = (i18n.LOCALE_DIR / "de" / "LC_MESSAGES" / f"{path}.po").read_text()
        assert "Ein Tipp" not in text and "einem Tipp" not in text, path
