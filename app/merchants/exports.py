"""CSV exports of a merchant's own data: daily figures, suppressed like the dashboard.

What leaves the dashboard keeps its promise (privacy model 5): no figure about fewer than k
cards, and none from which such a figure could be worked out. There is no row-level export: a
row per ledger entry is a figure about one card, and a card's rows (however relabelled, and
with times however rounded) form a pattern that a feedback, a remembered face or a second
export can be matched to.
"""

import csv
import io
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from app.analytics.kpis import suppress

DAILY_COLUMNS = (
    "day", "visits", "new_cards", "scans", "stamps", "redemptions", "voids", "rewards_earned",
    "poster", "printed", "claim", "existing", "new",
)  # fmt: skip
# A day's first visits by source (app.analytics.rollups.SOURCES) add up to its new cards, less
# any whose source was not recorded: their sum is taken as known.
ARRIVALS = ("printed", "claim", "existing", "new")
# A visit is a card-day: a day's visits are its distinct cards, and its scans and stamps are
# about those cards. The other counts are about at most as many cards as they count.
ABOUT_THE_DAYS_CARDS = ("visits", "scans", "stamps")
HIDDEN = "hidden"
CHUNK_ROWS = 2000
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A value as a CSV cell that a spreadsheet shows instead of evaluating."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """Header and rows as CSV text, a chunk of rows at a time.

    Every cell is quoted: a spreadsheet set to split on `;` (German Excel) or tabs would
    otherwise cut a text cell in two, and start a formula in the second part.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow([cell(name) for name in header])
    for count, row in enumerate(rows, start=1):
        writer.writerow([cell(value) for value in row])
        if count % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def suppressed_days(rows: Sequence[Mapping[str, Any]], k: int) -> list[dict[str, Any]]:
    """The daily figures as the export shows them: a figure about fewer than k cards reads
    "<k", and one that would give such a figure away reads "hidden".

    Each column adds up to the period's figure, which the dashboard may show: a column with a
    single hidden day would give it away, so suppress() hides one more (the smallest).
    """
    figures = DAILY_COLUMNS[1:]
    values: dict[Hashable, int] = {}
    sensitive: set[Hashable] = set()
    for n, row in enumerate(rows):
        for name in figures:
            value = int(row.get(name, 0))
            about = int(row["visits"]) if name in ABOUT_THE_DAYS_CARDS else value
            values[(n, name)] = value
            if about < k and value:
                sensitive.add((n, name))
    equations: list[tuple[Hashable, list[Hashable]]] = []
    for name in figures:
        total = ("total", name)
        values[total] = sum(values[(n, name)] for n in range(len(rows)))
        equations.append((total, [(n, name) for n in range(len(rows))]))
    for n, row in enumerate(rows):
        values[(n, "arrived")] = sum(int(row.get(name, 0)) for name in ARRIVALS)
        equations.append(((n, "arrived"), [(n, name) for name in ARRIVALS]))
    totals = {total for total, _ in equations}
    hidden = suppress(values, sensitive, equations, keep=totals)
    out = []
    for n, row in enumerate(rows):
        shown: dict[str, Any] = {"day": row["day"]}
        for name in figures:
            key = (n, name)
            shown[name] = f"<{k}" if key in sensitive else HIDDEN if key in hidden else values[key]
        out.append(shown)
    return out


def daily_csv(rows: Sequence[Mapping[str, Any]], k: int) -> Iterator[str]:
    """Daily figures (one mapping per day with activity, oldest first) as CSV text; counts
    only, no card and no holder, suppressed below k cards."""
    shown = suppressed_days(rows, k)
    return csv_lines(DAILY_COLUMNS, ([row[name] for name in DAILY_COLUMNS] for row in shown))
