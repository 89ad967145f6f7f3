"""The CSV writer of the exports: every cell quoted, formulas shown as text (pure, no database)."""

import csv
import io

from app.merchants.exports import csv_lines, suppressed_days


def test_every_cell_is_quoted_and_no_cell_starts_a_formula() -> None:
    rows = [["x;=1+1", "=1+1", "-2", 7, "a\tb", "plain"]]
    text = "".join(csv_lines(["name", "@note", "n", "count", "tab", "text"], rows))
    header, line = text.splitlines()
    assert header == '"name","\'@note","n","count","tab","text"'
    # German Excel splits on ";": inside quotes, "x;=1+1" stays one cell of text.
    assert line == '"x;=1+1","\'=1+1","\'-2","7","a\tb","plain"'
    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "'@note", "n", "count", "tab", "text"],
        ["x;=1+1", "'=1+1", "'-2", "7", "a\tb", "plain"],
    ]


def test_a_column_never_has_a_single_hidden_day() -> None:
    days = [
        {"day": "2026-11-02", "visits": 40, "new_cards": 12, "scans": 44, "stamps": 50,
         "redemptions": 11, "voids": 0, "rewards_earned": 12},
        {"day": "2026-11-03", "visits": 30, "new_cards": 2, "scans": 31, "stamps": 31,
         "redemptions": 10, "voids": 1, "rewards_earned": 10},
    ]  # fmt: skip
    shown = suppressed_days(days, k=10)
    assert [d["visits"] for d in shown] == [40, 30]
    # Two new cards: "<10"; the 12 beside it would give them away (the period has 14).
    assert [d["new_cards"] for d in shown] == ["hidden", "<10"]
    # Even a 0: beside the period's total of 1 it would give the 1 away.
    assert [d["voids"] for d in shown] == ["hidden", "<10"]
    assert [d["redemptions"] for d in shown] == [11, 10]
