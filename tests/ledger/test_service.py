"""The ledger's service called directly: what a till shows after a scan, and a program's goal
raised, with the rollups kept equal to the ledger (SQLite and PostgreSQL)."""

from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlmodel import Session, col, select

from app.ledger import service as ledger
from app.ledger.models import LedgerEntry
from app.ledger.schemas import CardBalanceOut
from app.merchants import service as merchants
from app.merchants.models import Merchant
from app.tokens.cards import CardKey
from app.tokens.crypto import holder_for
from tests.helpers.cards import book, issue_card
from tests.helpers.clock import Clock
from tests.helpers.rollups import assert_consistent
from tests.helpers.shops import Shop, make_shop


def holder(app: FastAPI, shop: Shop, card: CardKey) -> str:
    return holder_for(app.state.keyring, card.card_id, shop.merchant_id)


def scanned(app: FastAPI, shop: Shop, card: CardKey, seconds_later: float) -> list[CardBalanceOut]:
    """What the shop's till shows for the card that long after now."""
    now = app.state.clock() + timedelta(seconds=seconds_later)
    with Session(app.state.engine) as session:
        programs = merchants.till_programs(session=session, merchant_id=shop.merchant_id)
        return ledger.till_card(
            session=session, merchant_id=shop.merchant_id, programs=programs,
            holder=holder(app, shop, card), now=now,
        )  # fmt: skip


def test_the_till_shows_stamps_and_the_cooldown_left(
    app: FastAPI, clock: Clock, shop: Shop
) -> None:
    card = issue_card(app)
    book(app, shop, card, count=3)  # the shop's cooldown is 60 s
    (after_20,) = scanned(app, shop, card, 20)
    assert (after_20.program_id, after_20.stamps, after_20.rewards_available) == (
        shop.program_id, 3, 0,
    )  # fmt: skip
    assert after_20.cooldown_remaining == 40
    assert after_20.last_stamp_at == clock()
    assert [b.cooldown_remaining for b in scanned(app, shop, card, 60)] == [0]
    assert [b.cooldown_remaining for b in scanned(app, shop, card, 61)] == [0]


def test_a_paused_program_shows_only_on_cards_that_hold_stamps_in_it(
    app: FastAPI, shop: Shop
) -> None:
    stamped, new = issue_card(app), issue_card(app)
    book(app, shop, stamped, count=2)
    unstamped = CardBalanceOut(
        program_id=shop.program_id, stamps=0, rewards_available=0, cooldown_remaining=0,
        last_stamp_at=None,
    )  # fmt: skip
    assert scanned(app, shop, new, 0) == [unstamped]
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        merchants.set_program_active(
            session=session, merchant=merchant, program_id=shop.program_id, active=False
        )
        session.commit()
    assert scanned(app, shop, new, 0) == []
    assert [b.stamps for b in scanned(app, shop, stamped, 0)] == [2]


def raise_goal(app: FastAPI, shop: Shop, stamps_required: int) -> int:
    """The owner saves the program with a new goal; the number of cards scaled up."""
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        change = merchants.update_program(
            session=session, merchant=merchant, program_id=shop.program_id,
            now=app.state.clock(), name="", stamps_required=stamps_required,
            reward_text="1 free coffee", max_stamps_per_scan=10, cooldown_seconds=0, daily_cap=0,
        )  # fmt: skip
        session.commit()
    return change.rescaled_cards


def test_a_higher_goal_scales_stamps_up_in_the_ledger_and_the_rollups(
    app: FastAPI, clock: Clock
) -> None:
    shop = make_shop(app, "Café Ziel", stamps_required=10, cooldown_seconds=0)
    half, nine, undone = issue_card(app), issue_card(app), issue_card(app)
    book(app, shop, half, count=5)
    book(app, shop, nine, count=9)
    book(app, shop, undone, "void", entry_id=book(app, shop, undone, count=3).body["entry_id"])
    clock.advance(3600)
    assert raise_goal(app, shop, 12) == 2
    stamps = {
        card: [b.stamps for b in scanned(app, shop, card, 0)] for card in (half, nine, undone)
    }
    # The same share of the way, rounded in the card's favour: 5 of 10 are 6 of 12.
    assert stamps == {half: [6], nine: [11], undone: [0]}
    with Session(app.state.engine) as session:
        adjustments = session.exec(
            select(LedgerEntry).where(col(LedgerEntry.kind) == "adjustment")
        ).all()
    assert sorted((e.holder, e.delta, e.created_at) for e in adjustments) == sorted(
        [(holder(app, shop, half), 1, clock()), (holder(app, shop, nine), 2, clock())]
    )
    assert_consistent(app)


@pytest.mark.xfail(
    raises=AssertionError,
    reason="projections.recompute replays the whole history against today's goal: the reward "
    "earned at 10 of 10 is not one at 10 of 12, so a rebuild disagrees with the rollups kept",
)
def test_rewards_earned_before_a_higher_goal_stay_in_the_rollups(
    app: FastAPI, clock: Clock
) -> None:
    shop = make_shop(app, "Café Früher", stamps_required=10, cooldown_seconds=0)
    full, redeemed = issue_card(app), issue_card(app)
    book(app, shop, full, count=10)
    book(app, shop, redeemed, count=10)
    book(app, shop, redeemed, "redeem")
    clock.advance(3600)
    assert raise_goal(app, shop, 12) == 1
    assert [(b.stamps, b.rewards_available) for b in scanned(app, shop, full, 0)] == [(12, 1)]
    assert_consistent(app)
