"""The owner's pages for the loyalty levers, as an owner uses them (HTTP level): programs with
reward levels, archiving and closing out, regulars' tiers, promotions with their plain-language
preview; what the till and the card page then show; bad input and other shops' things."""

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.helpers.api import card_programs, new_card, redeem, stamp, till_programs
from tests.helpers.clock import Clock
from tests.helpers.loyalty import add_program, add_promotion, add_tier
from tests.helpers.pages import HTML, form_token, log_in_owner
from tests.helpers.shops import Shop

PROGRAM = {
    "name": "Mittagsmenü", "reward_text": "1 Dessert", "stamps_required": "6",
    "max_stamps_per_scan": "5", "cooldown_seconds": "0", "daily_cap": "0", "expire_months": "0",
}  # fmt: skip


def owner(client: TestClient, shop: Shop) -> str:
    """Log the shop's owner in; a CSRF token for the forms."""
    log_in_owner(client, shop)
    return form_token(client.get("/merchant/program", headers=HTML).text)


def post(client: TestClient, path: str, token: str, **data: Any) -> Any:
    return client.post(
        path, data={"csrf_token": token, **data}, headers=HTML, follow_redirects=False
    )


def levels(*rows: tuple[str, str]) -> dict[str, list[str]]:
    return {"level_stamps": [s for s, _r in rows], "level_reward": [r for _s, r in rows]}


def shown(client: TestClient, response: Any) -> str:
    """The page a form's redirect leads to."""
    assert response.status_code == 303, response.text
    return str(client.get(response.headers["location"], headers=HTML).text)


def text_of(html: str) -> str:
    """What a reader sees: the page without tags, entities undone, spaces collapsed."""
    plain = re.sub(r"<[^>]+>", " ", html).replace("&#34;", '"').replace("&#39;", "'")
    return " ".join(plain.replace("&amp;", "&").split())


# --- programs and reward levels ----------------------------------------------------------------


def test_a_second_program_and_a_ladder_reach_the_till_and_the_card(
    client: TestClient, shop: Shop
) -> None:
    token = owner(client, shop)
    page = shown(client, post(client, "/merchant/program", token, **PROGRAM))
    assert "The new program is running." in page
    first = {**PROGRAM, "name": "Kaffee", "reward_text": "1 Kaffee gratis",
             "stamps_required": "10", "max_stamps_per_scan": "10",
             "expire_months": "6"}  # fmt: skip
    saved = post(client, f"/merchant/program/{shop.program_id}", token, **first,
                 **levels(("5", "Kleiner Kaffee"), ("8", "Kaffee und Kuchen")))  # fmt: skip
    page = text_of(shown(client, saved))
    assert "The program was saved." in page
    assert "Kaffee Running 10 stamps → 1 Kaffee gratis 5 stamps → Kleiner Kaffee 8 stamps" in page
    assert "Stamps expire after 6 months without a visit." in page
    assert "Mittagsmenü Running 6 stamps → 1 Dessert" in page

    # The till offers both programs, each with its levels.
    programs = till_programs(client, shop)
    assert set(programs) == {"Kaffee", "Mittagsmenü"}
    ladder = [(lv["stamps"], lv["reward"]) for lv in programs["Kaffee"]["levels"]]
    assert ladder == [(5, "Kleiner Kaffee"), (8, "Kaffee und Kuchen")]
    assert programs["Mittagsmenü"]["levels"] == []

    # A card redeems the lower level, which takes its five stamps.
    card = new_card(client)
    assert stamp(client, shop, card, count=6, program_id=shop.program_id).status_code == 201
    small = programs["Kaffee"]["levels"][0]["id"]
    done = redeem(client, shop, card, program_id=shop.program_id, reward_id=small)
    assert done.status_code == 201, done.text
    assert done.json()["reward"]["text"] == "Kleiner Kaffee" and done.json()["stamps"] == 1
    assert card_programs(client, card)["Kaffee"]["stamps"] == 1

    # Saving the form again keeps the levels (and their ids: a till may be about to redeem).
    post(client, f"/merchant/program/{shop.program_id}", token, **first,
         **levels(("5", "Kleiner Kaffee"), ("8", "Kaffee und Kuchen")))  # fmt: skip
    again = till_programs(client, shop)
    assert again["Kaffee"]["levels"][0]["id"] == small


def test_the_program_page_in_german(client: TestClient, shop: Shop) -> None:
    token = owner(client, shop)
    post(client, f"/merchant/program/{shop.program_id}", token,
         **{**PROGRAM, "stamps_required": "10"}, **levels(("5", "Kleiner Kaffee")))  # fmt: skip
    page = text_of(client.get("/merchant/program?lang=de", headers=HTML).text)
    for words in ("Stempelprogramme", "Prämienstufen (optional)", "5 Stempel → Kleiner Kaffee",
                  "Dieses Programm beenden", "Stempel verfallen nach so vielen Monaten ohne Besuch",
                  "Programme", "Stammgäste", "Aktionen"):  # fmt: skip
        assert words in page, words


def test_archive_stops_stamps_keeps_rewards_and_close_books_out(
    client: TestClient, shop: Shop
) -> None:
    token = owner(client, shop)
    post(client, f"/merchant/program/{shop.program_id}", token,
         **{**PROGRAM, "stamps_required": "10"})  # fmt: skip
    card = new_card(client)
    assert stamp(client, shop, card, count=5).status_code == 201
    assert stamp(client, shop, card, count=5).status_code == 201
    assert stamp(client, shop, card, count=3).status_code == 201  # 13: a reward and 3

    page = text_of(
        shown(client, post(client, f"/merchant/program/{shop.program_id}/archive", token))
    )
    assert "The program is archived: no more stamps." in page
    assert "Close out…" in page and "Pause the program" not in page
    refused = stamp(client, shop, card)
    assert refused.status_code == 409 and refused.json()["code"] == "program-ended"
    assert redeem(client, shop, card).status_code == 201  # the reward stays redeemable
    assert card_programs(client, card)["Mittagsmenü"]["ended"] is True

    # Closing out asks first, and says what it books out (no figure about fewer than k cards).
    confirm = post(client, f"/merchant/program/{shop.program_id}/close", token)
    assert confirm.headers["location"] == f"/merchant/program/{shop.program_id}/close"
    ask = text_of(client.get(confirm.headers["location"], headers=HTML).text)
    assert "Close out “Mittagsmenü”?" in ask
    assert "Fewer than 10 cards hold stamps in this program." in ask
    assert "This cannot be undone." in ask
    closed = post(client, f"/merchant/program/{shop.program_id}/close", token, confirm="yes")
    page = text_of(shown(client, closed))
    assert "Its outstanding stamps were booked out." in page
    # The card no longer shows the program, nor does the till offer it.
    assert card_programs(client, card) == {}
    assert till_programs(client, shop) == {}
    assert redeem(client, shop, card).status_code in (404, 409)


def test_the_close_out_page_counts_cards_from_k_on(client: TestClient, shop: Shop) -> None:
    token = owner(client, shop)
    cards = [new_card(client) for _ in range(10)]
    for n, card in enumerate(cards, start=1):
        assert stamp(client, shop, card, count=n % 4 + 1).status_code == 201
    post(client, f"/merchant/program/{shop.program_id}/archive", token)
    ask = text_of(client.get(f"/merchant/program/{shop.program_id}/close", headers=HTML).text)
    assert "10 cards hold stamps in this program, 25 in all." in ask
    german = text_of(
        client.get(f"/merchant/program/{shop.program_id}/close?lang=de", headers=HTML).text
    )
    assert "10 Karten haben Stempel in diesem Programm, insgesamt 25." in german


# --- regulars ------------------------------------------------------------------------------------


def test_a_tier_made_on_the_page_shows_on_the_card(
    client: TestClient, shop: Shop, clock: Clock
) -> None:
    token = owner(client, shop)
    created = post(client, "/merchant/regulars", token, name="Stammgast", lifetime_stamps="3",
                   bonus_per_visit="1", perk="10 % auf Kuchen")  # fmt: skip
    page = text_of(shown(client, created))
    assert "The tier was added." in page
    assert (
        "Stammgast From 3 stamps collected here, +1 stamp on every visit, 10 % auf Kuchen" in page
    )
    german = text_of(client.get("/merchant/regulars?lang=de", headers=HTML).text)
    assert "Ab 3 hier gesammelten Stempeln, +1 Stempel bei jedem Besuch, 10 % auf Kuchen" in german

    card = new_card(client)
    assert stamp(client, shop, card, count=2).status_code == 201
    view = card_programs(client, card)["10 stamps"]
    assert view["tier"] is None
    assert view["next_tier"] == {"name": "Stammgast", "lifetime_stamps_needed": 1}
    clock.advance(61)  # past the program's cooldown
    third = stamp(client, shop, card, count=1)
    assert third.status_code == 201
    assert third.json()["bonus"] == []  # the perk starts on the visit after reaching the tier
    view = card_programs(client, card)["10 stamps"]
    assert view["tier"] == {"name": "Stammgast", "perk": "10 % auf Kuchen"}
    assert view["next_tier"] is None


def test_tier_lapse_and_removal(client: TestClient, shop: Shop, clock: Clock) -> None:
    token = owner(client, shop)
    post(client, "/merchant/regulars", token, name="Stammgast", lifetime_stamps="2")
    card = new_card(client)
    assert stamp(client, shop, card, count=2).status_code == 201
    assert card_programs(client, card)["10 stamps"]["tier"] == {"name": "Stammgast", "perk": ""}

    page = shown(client, post(client, "/merchant/regulars/lapse", token, months="3"))
    assert "Saved: when regulars' status lapses." in text_of(page)
    assert re.search(r'id="months" name="months" type="number" value="3"', page)
    tier_id = re.search(r'id="tier-(\d+)"', page)
    assert tier_id
    clock.advance(120 * 86_400)  # four months away: the status has lapsed
    assert card_programs(client, card)["10 stamps"]["tier"] is None

    token = owner(client, shop)  # the login of four months ago has run out
    removed = post(client, f"/merchant/regulars/{tier_id.group(1)}/delete", token)
    page = text_of(shown(client, removed))
    assert "The tier was removed. Cards keep their stamps." in page
    assert "No tier yet." in page
    assert card_programs(client, card)["10 stamps"]["stamps"] == 2


# --- promotions ----------------------------------------------------------------------------------

HAPPY_HOUR = {
    "kind": "multiplier", "title": "Happy Hour", "program_id": "", "factor": "2",
    "from": "14:00", "to": "16:00", "starts": "", "ends": "2026-03-31", "budget": "500",
    "holdout_percent": "0",
}  # fmt: skip
SENTENCE = {
    "en": "Tuesdays to Thursdays 14\u201316 h, every stamp counts double, until 31 March, "
          "at most 500 extra stamps",
    "de": "Dienstag bis Donnerstag 14\u201316 Uhr zählt jeder Stempel doppelt, bis 31. März, "
          "höchstens 500 Extrastempel",
}  # fmt: skip


def test_a_happy_hour_in_plain_words_and_at_the_till(
    client: TestClient, shop: Shop, clock: Clock
) -> None:
    # Tuesday 3 March 2026, 14:30 in Vienna.
    clock.now = datetime(2026, 3, 3, 13, 30, tzinfo=UTC)
    token = owner(client, shop)
    form = client.get("/merchant/promotions/new?kind=multiplier", headers=HTML).text
    assert 'name="factor"' in form and 'name="days"' in form and 'name="stamps"' not in form
    assert "merchant-promotions.js" in form

    # The preview the form's script asks for while the owner types.
    query = {**HAPPY_HOUR, "days": ["tue", "wed", "thu"]}
    for language, sentence in SENTENCE.items():
        preview = client.get("/merchant/promotions/preview", params={**query, "lang": language})
        assert preview.status_code == 200
        assert preview.json()["summary"] == sentence
    half = client.get("/merchant/promotions/preview", params={**query, "to": ""})
    assert half.json()["summary"] == ""
    assert half.json()["errors"] == {"to": "Give both times, or neither for all day."}

    created = post(client, "/merchant/promotions", token, **query)
    page = text_of(shown(client, created).replace("&lt;", "<"))
    assert "The promotion was saved." in page
    assert f"Happy Hour · Happy hour Running {SENTENCE['en']}" in page
    assert "0 of 500 extra stamps given" in page
    german = text_of(client.get("/merchant/promotions?lang=de", headers=HTML).text)
    assert SENTENCE["de"] in german and "0 von 500 Extrastempeln vergeben" in german

    # At the till: every stamp counts double now.
    card = new_card(client)
    response = stamp(client, shop, card, count=2)
    assert response.status_code == 201
    assert [(b["title"], b["stamps"]) for b in response.json()["bonus"]] == [("Happy Hour", 2)]
    assert "2 of 500 extra stamps given" in text_of(
        client.get("/merchant/promotions?lang=en", headers=HTML).text
    )

    promotion_id = re.search(r'id="promotion-(\d+)"', shown(client, created))
    assert promotion_id
    ended = post(client, f"/merchant/promotions/{promotion_id.group(1)}/end", token)
    page = text_of(shown(client, ended))
    assert "The promotion was ended." in page and "Ended" in page
    clock.advance(120)
    assert stamp(client, shop, card).json()["bonus"] == []


def test_each_kind_asks_only_for_its_settings(client: TestClient, shop: Shop) -> None:
    owner(client, shop)
    for kind, wanted, absent in (
        ("welcome", ["stamps"], ["factor", "days", "away_days", "from"]),
        ("winback", ["stamps", "away_days"], ["factor", "days"]),
        ("anniversary", ["stamps"], ["factor", "away_days"]),
        ("campaign", ["stamps"], ["factor", "from", "away_days"]),
        ("multiplier", ["factor", "days", "from", "to"], ["stamps", "away_days"]),
    ):
        form = client.get(f"/merchant/promotions/new?kind={kind}", headers=HTML).text
        for name in wanted:
            assert f'name="{name}"' in form, (kind, name)
        for name in absent:
            assert f'name="{name}"' not in form, (kind, name)
        for common in ("title", "program_id", "starts", "ends", "budget", "holdout_percent"):
            assert f'name="{common}"' in form, (kind, common)


def test_promotions_of_each_kind_read_plainly(client: TestClient, shop: Shop) -> None:
    token = owner(client, shop)
    common = {"program_id": "", "starts": "", "ends": "", "budget": "0", "holdout_percent": "0"}
    for kind, fields in (
        ("welcome", {"stamps": "2"}),
        ("winback", {"stamps": "1", "away_days": "45"}),
        ("anniversary", {"stamps": "3"}),
        ("campaign", {"stamps": "1", "holdout_percent": "10"}),
    ):
        response = post(client, "/merchant/promotions", token, kind=kind, title="", **{
            **common, **fields})  # fmt: skip
        assert response.status_code == 303, (kind, response.text)
    english = text_of(client.get("/merchant/promotions?lang=en", headers=HTML).text)
    for sentence in (
        "+2 stamps on the first visit of a card",
        "+1 stamp on the first visit after 45 days or more away",
        "+3 stamps on the first visit after each anniversary of a card's first visit",
        "+1 stamp on every visit, 10% of cards get no bonus, for comparison",
    ):
        assert sentence in english, sentence
    german = text_of(client.get("/merchant/promotions?lang=de", headers=HTML).text)
    for sentence in (
        "+2 Stempel beim ersten Besuch einer Karte",
        "+1 Stempel beim ersten Besuch nach mindestens 45 Tagen ohne Besuch",
        "+1 Stempel bei jedem Besuch, 10 % der Karten bekommen zum Vergleich keinen Bonus",
    ):
        assert sentence in german, sentence
    # Without a title a promotion is called by its kind, in the shop's language (German).
    for title in ("Willkommen", "Willkommen zurück", "Jahrestag", "Aktionsbonus"):
        assert title in german, title


def test_a_promotion_limited_to_one_program(client: TestClient, shop: Shop, app: FastAPI) -> None:
    lunch = add_program(app, shop, "Mittagsmenü", 6, "1 Dessert")
    token = owner(client, shop)
    form = client.get("/merchant/promotions/new?kind=campaign", headers=HTML).text
    assert f'<option value="{lunch.id}">Mittagsmenü</option>' in form
    created = post(client, "/merchant/promotions", token, kind="campaign", title="Mittagsbonus",
                   stamps="1", program_id=str(lunch.id), starts="", ends="", budget="0",
                   holdout_percent="0")  # fmt: skip
    page = text_of(shown(client, created))
    assert "+1 stamp on every visit, only in “Mittagsmenü”" in page


# --- bad input, another shop, forms without their token -------------------------------------------


def test_bad_input_comes_back_with_the_fields_kept(client: TestClient, shop: Shop) -> None:
    token = owner(client, shop)
    bad = post(client, "/merchant/program", token,
               **{**PROGRAM, "stamps_required": "zehn", "name": "Frühstück"},
               **levels(("3", ""), ("6", "Croissant")))  # fmt: skip
    assert bad.status_code == 422
    assert "Enter a whole number from 1 to 100." in bad.text
    assert "Say what this reward is, or leave both fields empty." in bad.text
    assert 'value="Frühstück"' in bad.text and 'value="zehn"' in bad.text
    assert 'value="Croissant"' in bad.text

    level = post(client, f"/merchant/program/{shop.program_id}", token,
                 **{**PROGRAM, "stamps_required": "6"}, **levels(("6", "Alles")))  # fmt: skip
    assert level.status_code == 422
    assert "A reward level needs at least 1 stamp and fewer than the main reward." in level.text
    assert 'value="Alles"' in level.text

    tier = post(client, "/merchant/regulars", token, name="", lifetime_stamps="0", perk="Kuchen")
    assert tier.status_code == 422
    assert "The tier needs a name, e.g. Regular." in tier.text
    assert "Enter a whole number from 1 to 100000." in tier.text and 'value="Kuchen"' in tier.text

    promotion = post(client, "/merchant/promotions", token, **{
        **HAPPY_HOUR, "to": "13:00", "starts": "2026-04-01", "title": "Nachmittag"})  # fmt: skip
    assert promotion.status_code == 422
    for message in ("Choose at least one day.", "The end must come after the start.",
                    "The last day cannot come before the first."):  # fmt: skip
        assert message in promotion.text, message
    assert 'value="Nachmittag"' in promotion.text and 'value="13:00"' in promotion.text
    german = client.post(
        "/merchant/promotions?lang=de", data={"csrf_token": token, **HAPPY_HOUR, "days": ["xyz"]},
        headers=HTML,
    )  # fmt: skip
    assert german.status_code == 422 and "Wählen Sie mindestens einen Tag." in german.text


def test_refusals_of_the_rules_come_back_as_the_forms_notice(
    client: TestClient, shop: Shop, app: FastAPI
) -> None:
    for n in range(2, 6):
        add_tier(app, shop, f"Stufe {n}", n * 10)
    add_tier(app, shop, "Stufe 6", 60)
    token = owner(client, shop)
    page = client.get("/merchant/regulars", headers=HTML).text
    assert "Add a tier" not in page  # five tiers: the most a shop has
    refused = post(client, "/merchant/regulars", token, name="Stufe 7", lifetime_stamps="70")
    assert refused.status_code == 409
    assert "A shop has at most 5 tiers." in refused.text


def test_another_shops_things_are_not_found(
    app: FastAPI, client: TestClient, shop: Shop, other_shop: Shop
) -> None:
    tier = add_tier(app, other_shop, "Gold", 20)
    promotion = add_promotion(app, other_shop, "welcome", stamps=2)
    token = owner(client, shop)
    for response in (
        client.get(f"/merchant/program/{other_shop.program_id}/close", headers=HTML),
        post(client, f"/merchant/program/{other_shop.program_id}/archive", token),
        post(client, f"/merchant/program/{other_shop.program_id}", token, **PROGRAM),
        post(client, f"/merchant/regulars/{tier.id}/delete", token),
        post(client, f"/merchant/promotions/{promotion.id}/end", token),
    ):
        assert response.status_code == 404
        assert "There is nothing at this address." in response.text or "Not found" in response.text
    # Nor can a promotion be limited to another shop's program.
    taken = post(client, "/merchant/promotions", token, kind="welcome", stamps="1",
                 program_id=str(other_shop.program_id), title="", starts="", ends="",
                 budget="0", holdout_percent="0")  # fmt: skip
    assert taken.status_code == 422
    assert "Choose one of your programs that still take stamps." in taken.text


def test_forms_without_their_token_are_refused(client: TestClient, shop: Shop) -> None:
    owner(client, shop)
    for path, data in (
        ("/merchant/program", PROGRAM),
        ("/merchant/promotions", {**HAPPY_HOUR, "days": ["tue"]}),
        ("/merchant/regulars", {"name": "Gold", "lifetime_stamps": "20"}),
        (f"/merchant/program/{shop.program_id}/archive", {}),
    ):
        response = client.post(path, data=data, headers=HTML, follow_redirects=False)
        assert response.status_code == 403, path
        assert "Form expired" in response.text
    assert "Running" in client.get("/merchant/program", headers=HTML).text
    assert "No promotion yet." in client.get("/merchant/promotions", headers=HTML).text
