"""A shop's levers as its owner sets them, written straight through app.loyalty.service."""

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI
from sqlmodel import Session

from app.loyalty import service as loyalty
from app.loyalty.models import Promotion, RewardLevel, Tier
from app.merchants.models import Merchant, Program
from tests.helpers.shops import Shop

T = TypeVar("T")


def as_owner(app: FastAPI, shop: Shop, change: Callable[[Session, Merchant], T]) -> T:
    """Run one change of the shop's owner in its own committed transaction."""
    with Session(app.state.engine, expire_on_commit=False) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        result = change(session, merchant)
        session.commit()
        return result


def add_promotion(app: FastAPI, shop: Shop, kind: str, **fields: Any) -> Promotion:
    spec = loyalty.PromotionSpec(kind=kind, **fields)
    now = app.state.clock()
    return as_owner(
        app, shop, lambda s, m: loyalty.create_promotion(session=s, merchant=m, now=now, spec=spec)
    )


def add_tier(app: FastAPI, shop: Shop, name: str, lifetime_stamps: int, **fields: Any) -> Tier:
    return as_owner(
        app, shop,
        lambda s, m: loyalty.create_tier(
            session=s, merchant=m, now=app.state.clock(), name=name,
            lifetime_stamps=lifetime_stamps, **fields,
        ),
    )  # fmt: skip


def add_program(app: FastAPI, shop: Shop, name: str, stamps_required: int, reward: str,
                **fields: Any) -> Program:  # fmt: skip
    return as_owner(
        app, shop,
        lambda s, m: loyalty.create_program(
            session=s, merchant=m, now=app.state.clock(), name=name,
            stamps_required=stamps_required, reward_text=reward, **fields,
        ),
    )  # fmt: skip


def set_levels(app: FastAPI, shop: Shop, levels: list[tuple[int, str]],
               program_id: int | None = None) -> list[RewardLevel]:  # fmt: skip
    def change(session: Session, merchant: Merchant) -> list[RewardLevel]:
        program = session.get(Program, program_id or shop.program_id)
        assert program is not None
        return loyalty.set_levels(
            session=session, merchant=merchant, program=program, levels=levels,
            now=app.state.clock(),
        )  # fmt: skip

    return as_owner(app, shop, change)
