"""Stamps past their program's expiry are booked out by the hourly housekeeping, for cards that
do not come back; a card that does come back in time keeps them."""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app import maintenance
from app.loyalty import service as loyalty
from tests.helpers.api import new_card, stamp
from tests.helpers.clock import Clock
from tests.helpers.loyalty import as_owner
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
