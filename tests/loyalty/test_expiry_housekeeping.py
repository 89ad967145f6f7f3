"""Stamps past their program's expiry are booked out by the hourly housekeeping, for cards that
do not come back; a card that does come back in time keeps them."""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app import maintenance
from app.loyalty import service as loyalty
from tests.helpers.api import new_card, stamp
from tests.helpers.clock import Clock
from tests.helpers.loyalty import add_program, as_owner
from tests.helpers.rollups import assert_consistent
from tests.helpers.shops import Shop

DAY = 86_400


def test_housekeeping_books_out_stamps_after_the_months_away(
    app: FastAPI, client: TestClient, shop: Shop, clock: Clock
) -> None:
    as_owner(
        app, shop,
        lambda s, m: loyalty.set_expiry(
            session=s, merchant=m, program_id=shop.program_id, months=3
        ),
    )  # fmt: skip
    away, back = new_card(client), new_card(client)
    for token in (away, back):
        assert stamp(client, shop, token, count=4).status_code == 201
    views = [client.get(f"/api/v1/cards/{token}").json()["cards"][0] for token in (away, back)]
    # Three months after the visit on 2 November (the page also keeps the card from being
    # taken for an idle one-tap card).
    assert [v["expires_on"] for v in views] == ["2027-02-02", "2027-02-02"]

    clock.advance(60 * DAY)
    assert stamp(client, shop, back).status_code == 201
    clock.advance(40 * DAY)  # `away` was last seen 100 days ago, `back` 40 days ago
    removed = maintenance.run_once(app.state.engine, app.state.settings, clock())

    assert removed["expired_cards"] == 1
    gone = client.get(f"/api/v1/cards/{away}").json()["cards"][0]
    kept = client.get(f"/api/v1/cards/{back}").json()["cards"][0]
    assert (gone["stamps"], gone["expires_on"]) == (0, None)
    assert kept["stamps"] == 5
    assert maintenance.run_once(app.state.engine, app.state.settings, clock())["expired_cards"] == 0
    export = client.get(f"/api/v1/cards/{away}/export").json()
    kinds = [(e["kind"], e["delta"]) for e in export["merchants"][0]["ledger"]]
    assert kinds == [("stamp", 4), ("expiry", -4)]
    assert_consistent(app)


def test_a_card_back_after_the_expiry_starts_again_from_its_new_stamps(
    app: FastAPI, client: TestClient, shop: Shop, card: str, clock: Clock
) -> None:
    as_owner(
        app, shop,
        lambda s, m: loyalty.set_expiry(
            session=s, merchant=m, program_id=shop.program_id, months=2
        ),
    )  # fmt: skip
    assert stamp(client, shop, card, count=7).status_code == 201
    clock.advance(62 * DAY)
    answer = stamp(client, shop, card, count=1)
    assert answer.status_code == 201
    assert answer.json()["stamps"] == 1
    assert_consistent(app)


def test_a_visit_in_another_program_of_the_shop_keeps_the_stamps(
    app: FastAPI, client: TestClient, shop: Shop, card: str, clock: Clock
) -> None:
    """Stamps expire after months without a visit at the shop: lunch every month keeps the
    coffee stamps, at the next coffee as in the hourly housekeeping."""
    lunch = add_program(app, shop, "Mittagsmenü", 6, "1 Dessert")
    as_owner(
        app, shop,
        lambda s, m: loyalty.set_expiry(
            session=s, merchant=m, program_id=shop.program_id, months=2
        ),
    )  # fmt: skip
    assert stamp(client, shop, card, count=4).status_code == 201
    client.get(f"/api/v1/cards/{card}")  # its page: no idle one-tap card, for housekeeping
    for _ in range(3):  # lunch on days 40, 80 and 120
        clock.advance(40 * DAY)
        assert stamp(client, shop, card, program_id=lunch.id).status_code == 201
        assert maintenance.run_once(app.state.engine, app.state.settings, clock())[
            "expired_cards"
        ] == 0  # fmt: skip
    coffee = next(
        c for c in client.get(f"/api/v1/cards/{card}").json()["cards"] if c["program"]["id"]
        == shop.program_id
    )  # fmt: skip
    # Two months after the last lunch, on 2 March.
    assert (coffee["stamps"], coffee["expires_on"]) == (4, "2027-05-02")
    clock.advance(DAY)
    assert stamp(client, shop, card).json()["stamps"] == 5
    clock.advance(70 * DAY)  # now nothing at the shop for 70 days
    assert maintenance.run_once(app.state.engine, app.state.settings, clock())[
        "expired_cards"
    ] == 1  # fmt: skip
    # The coffee stamps expired; lunch stamps (a program without expiry) stay.
    cards = client.get(f"/api/v1/cards/{card}").json()["cards"]
    assert [(c["program"]["name"], c["stamps"]) for c in cards] == [
        ("10 stamps", 0), ("Mittagsmenü", 3),
    ]  # fmt: skip
    assert_consistent(app)
