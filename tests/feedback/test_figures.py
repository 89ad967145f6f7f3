"""Feedback figures against small hand-computed sets, including the suppression boundaries."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.feedback.figures import Rated, csat, median_reply_seconds, nps, summarise, weekly

VIENNA = ZoneInfo("Europe/Vienna")
MONDAY = datetime(2026, 11, 2, tzinfo=VIENNA)  # a Monday, midnight at the shop


def rated(ratings: list[int], at: datetime = MONDAY, **extra: object) -> list[Rated]:
    return [Rated(created_at=at, rating=r, **extra) for r in ratings]  # type: ignore[arg-type]


def test_csat_is_the_share_of_fours_and_fives() -> None:
    # 4, 5, 5 of 8 are satisfied: 3/8.
    assert csat([1, 2, 3, 3, 4, 5, 5, 2]) == pytest.approx(0.375)
    assert csat([5]) == 1.0
    assert csat([3, 3]) == 0.0
    assert csat([]) is None


def test_nps_counts_promoters_passives_detractors() -> None:
    # 10, 9, 9 promoters (3); 8, 7 passives (2); 6, 0, 3, 5, 6 detractors (5); n = 10.
    result = nps([10, 9, 9, 8, 7, 6, 0, 3, 5, 6])
    assert result == {
        "score": -20,
        "responses": 10,
        "promoters": 0.3,
        "passives": 0.2,
        "detractors": 0.5,
    }
    assert nps([9, 10, 7, 8])["score"] == 50  # type: ignore[index]
    assert nps([6]) == {"score": -100, "responses": 1, "promoters": 0.0, "passives": 0.0,
                        "detractors": 1.0}  # fmt: skip
    assert nps([]) is None


def test_median_reply_time_ignores_unanswered() -> None:
    rows = [
        Rated(MONDAY, 3, replied_at=MONDAY + timedelta(hours=1)),
        Rated(MONDAY, 3, replied_at=MONDAY + timedelta(hours=5)),
        Rated(MONDAY, 3, replied_at=MONDAY + timedelta(hours=2)),
        Rated(MONDAY, 3),
    ]
    assert median_reply_seconds(rows) == 2 * 3600
    assert median_reply_seconds(rows[3:]) is None


def test_summary_of_a_hand_computed_period() -> None:
    k = 5
    scores = [10, 9, 8, 6, 2, None]
    rows = [
        Rated(MONDAY + timedelta(hours=i), r, recommend=s, tags=t, replied_at=rep, hidden=h)
        for i, (r, s, t, rep, h) in enumerate(
            [
                (5, scores[0], ("service",), MONDAY + timedelta(hours=3), False),
                (4, scores[1], ("service", "price"), MONDAY + timedelta(hours=4), False),
                (4, scores[2], ("service",), None, False),
                (2, scores[3], ("waiting_time",), MONDAY + timedelta(hours=9), False),
                (1, scores[4], ("service",), None, True),
                (3, scores[5], ("service",), None, False),
            ]
        )
    ]
    end = MONDAY + timedelta(days=7)
    clicks = {date(2026, 11, 2): 2, date(2026, 11, 4): 1}
    out = summarise(rows, start=MONDAY, end=end, tz=VIENNA, k=k, clicks_by_day=clicks)
    assert out["count"] == 6 and not out["suppressed"]
    assert out["average_rating"] == pytest.approx(19 / 6)
    assert out["csat"] == pytest.approx(3 / 6)
    # 5 answers: 2 promoters, 1 passive, 2 detractors -> 0.
    assert out["nps"]["score"] == 0 and out["nps"]["responses"] == 5
    assert out["response_rate"] == pytest.approx(3 / 6)
    # Replies after 3, 3 and 6 hours (created at +0, +1, +3): median 3 hours.
    assert out["median_reply_seconds"] == 3 * 3600
    # "service" 5 times is shown; "price" and "waiting_time" (once each) are only counted.
    assert out["top_tags"] == [{"tag": "service", "count": 5}]
    assert out["tags_suppressed"] == 2
    assert out["hidden"] == 1
    assert out["review_clicks"] == 3
    assert out["review_clicks_weekly"][0] == {"week": "2026-11-02", "clicks": 3}


def test_fewer_than_k_suppresses_every_figure_but_the_clicks() -> None:
    rows = rated([5, 5, 1, 1], recommend=10)
    out = summarise(rows, start=MONDAY, end=MONDAY + timedelta(days=1), tz=VIENNA, k=5,
                    clicks_by_day={date(2026, 11, 2): 4})  # fmt: skip
    assert out["suppressed"]
    for name in ("count", "average_rating", "csat", "nps", "response_rate", "hidden"):
        assert out[name] is None, name
    assert out["top_tags"] == []
    assert out["review_clicks"] == 4
    # Exactly k is enough.
    out = summarise(rated([5, 5, 1, 1, 3], recommend=10), start=MONDAY,
                    end=MONDAY + timedelta(days=1), tz=VIENNA, k=5)  # fmt: skip
    assert out["count"] == 5 and out["csat"] == pytest.approx(0.4)
    assert out["nps"]["score"] == 100


def test_groups_are_counted_in_cards_not_in_feedbacks() -> None:
    """One regular's feedback after every visit is still one customer."""
    day = {"start": MONDAY, "end": MONDAY + timedelta(days=7), "tz": VIENNA, "k": 5}
    regulars = [
        Rated(created_at=MONDAY + timedelta(hours=i), rating=5 if i % 3 else 1, recommend=9,
              tags=("service",), card=i % 4)
        for i in range(12)
    ]  # fmt: skip
    out = summarise(regulars, **day)  # type: ignore[arg-type]
    assert out["suppressed"] and out["count"] is None and out["csat"] is None
    assert out["nps"] is None and out["weekly"][0]["suppressed"]
    fifth = Rated(created_at=MONDAY, rating=4, recommend=9, tags=("service",), card=4)
    out = summarise([*regulars, fifth], **day)  # type: ignore[arg-type]
    assert out["count"] == 13 and out["csat"] == pytest.approx(9 / 13)
    assert out["nps"]["score"] == 100
    assert out["top_tags"] == [{"tag": "service", "count": 13}]


def test_nps_has_its_own_threshold_as_the_question_is_optional() -> None:
    rows = rated([4] * 6) + rated([4] * 4, recommend=9)
    out = summarise(rows, start=MONDAY, end=MONDAY + timedelta(days=1), tz=VIENNA, k=5)
    assert out["count"] == 10
    assert out["nps"] is None and out["nps_suppressed"]


def test_a_small_week_is_not_derivable_from_the_total() -> None:
    week2 = MONDAY + timedelta(days=7)
    week3 = MONDAY + timedelta(days=14)
    rows = rated([5] * 6) + rated([1, 2], at=week2) + rated([4] * 7, at=week3)
    out = weekly(rows, start=MONDAY, end=MONDAY + timedelta(days=21), tz=VIENNA, k=5)
    assert [w["week"] for w in out] == ["2026-11-02", "2026-11-09", "2026-11-16"]
    # Week 2 (2 feedbacks) is suppressed; the total 15 minus 6 minus 7 would reveal it, so the
    # smaller shown week (6) is suppressed with it.
    assert [w["suppressed"] for w in out] == [True, True, False]
    assert out[2]["count"] == 7 and out[2]["csat"] == 1.0
    assert out[0]["average_rating"] is None and out[1]["count"] is None


def test_empty_weeks_show_zero_and_weeks_follow_the_shops_time_zone() -> None:
    # Sunday 23:30 UTC is already Monday in Vienna.
    late_sunday = datetime(2026, 11, 15, 23, 30, tzinfo=UTC)
    rows = rated([5] * 5, at=late_sunday)
    out = weekly(rows, start=MONDAY, end=MONDAY + timedelta(days=21), tz=VIENNA, k=5)
    assert [(w["week"], w["count"]) for w in out] == [
        ("2026-11-02", 0),
        ("2026-11-09", 0),
        ("2026-11-16", 5),
    ]
    assert not out[0]["suppressed"]
