"""What a visit counts for in a promotion's treated or held-out group (app.analytics.holdout)."""

from datetime import UTC, date, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from app.analytics.holdout import RETURN_DAYS, Trial, visit_counts
from app.analytics.rollups import day_number
from app.ledger.projections import trials
from app.loyalty.rules import held_out

KEY = "00" * 32
START = day_number(date(2026, 3, 2))
END = START + 13  # two weeks


def _trial(last_day: int | None = END) -> Trial:
    return Trial(promotion_id=7, key=KEY, percent=20, first_day=START, last_day=last_day)


def _counts(day: int, previous: int | None, holder: str = "h1") -> list[tuple[int, int, int]]:
    return [counts for _, counts in visit_counts([_trial()], holder, day, previous)]


def test_a_first_visit_during_the_promotion_enters_it() -> None:
    assert _counts(START + 1, None) == [(1, 1, 0)]
    assert _counts(START + 1, START - 40) == [(1, 1, 0)]  # away since before it began


def test_a_visit_after_one_during_the_promotion_is_a_return() -> None:
    assert _counts(START + 5, START + 1) == [(1, 0, 1)]


def test_a_return_counts_up_to_thirty_days_after_the_last_day_but_no_visit_does() -> None:
    assert _counts(END + RETURN_DAYS, END) == [(0, 0, 1)]
    assert _counts(END + RETURN_DAYS + 1, END) == []
    assert _counts(END + 10, END - 25) == []  # back, but more than 30 days after


def test_visits_outside_the_promotion_count_for_nothing() -> None:
    assert _counts(START - 1, START - 3) == []
    assert _counts(END + 5, None) == []


def test_the_group_is_the_cards_fixed_hold_out_and_the_key_names_it() -> None:
    holders = [f"holder-{i}" for i in range(200)]
    groups = {h: next(iter(visit_counts([_trial()], h, START, None)))[0][2] for h in holders}
    assert groups == {h: int(held_out(KEY, h, 20)) for h in holders}
    assert 20 <= sum(groups.values()) <= 60  # about a fifth, not all, not none


def test_trials_take_the_promotions_with_a_hold_out_and_their_days_in_the_shops_zone() -> None:
    vienna = ZoneInfo("Europe/Vienna")
    rows = [
        SimpleNamespace(
            id=1, holdout_percent=10, holdout_key=KEY, starts_on=None, ends_on=None,
            created_at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC),  # 2 March in Vienna
            ended_at=datetime(2026, 3, 20, 12, 0, tzinfo=UTC),
        ),
        SimpleNamespace(
            id=2, holdout_percent=0, holdout_key=KEY, starts_on=None, ends_on=None,
            created_at=datetime(2026, 3, 1, tzinfo=UTC), ended_at=None,
        ),
        SimpleNamespace(
            id=3, holdout_percent=25, holdout_key=KEY, starts_on=date(2026, 4, 1),
            ends_on=date(2026, 4, 30), created_at=datetime(2026, 3, 1, tzinfo=UTC),
            ended_at=None,
        ),
    ]  # fmt: skip
    found = trials(rows, vienna)
    assert [(t.promotion_id, t.first_day, t.last_day) for t in found] == [
        (1, day_number(date(2026, 3, 2)), day_number(date(2026, 3, 20))),
        (3, day_number(date(2026, 4, 1)), day_number(date(2026, 4, 30))),
    ]
