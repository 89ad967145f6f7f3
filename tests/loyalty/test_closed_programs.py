"""A program closed out leaves its visits behind: the card is no new customer at the shop."""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.loyalty import service as loyalty
from tests.helpers.api import stamp
from tests.helpers.clock import Clock
from tests.helpers.loyalty import add_program, add_promotion, add_tier, as_owner
from tests.helpers.shops import Shop


def test_a_card_of_a_closed_program_gets_no_second_welcome_and_its_old_stamps_no_status(
    app: FastAPI, client: TestClient, shop: Shop, card: str, clock: Clock
) -> None:
    add_tier(app, shop, "Stammgast", 5, bonus_per_visit=1)
    assert stamp(client, shop, card, count=6).json()["bonus"] == []
    now = clock()
    for change in (loyalty.archive_program, loyalty.close_program):
        as_owner(
            app, shop,
            lambda s, m, change=change: change(
                session=s, merchant=m, program_id=shop.program_id, now=now
            ),
        )  # fmt: skip
    lunch = add_program(app, shop, "Mittagsmenü", 6, "1 Dessert")
    add_promotion(app, shop, "welcome", stamps=2)
    clock.advance(3600)

    answer = stamp(client, shop, card, program_id=lunch.id)

    # Neither a welcome (the card was here before) nor the tier's perk (its 6 stamps were in the
    # closed program, booked out): just the stamp.
    assert (answer.status_code, answer.json()["bonus"], answer.json()["stamps"]) == (201, [], 1)
    view = client.get(f"/api/v1/cards/{card}").json()["cards"]
    assert [(c["program"]["name"], c["tier"]) for c in view] == [("Mittagsmenü", None)]
