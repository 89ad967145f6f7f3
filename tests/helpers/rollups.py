"""The dashboard's rollup tables as stored, and as recomputed from the ledger: the two must be
equal after any write."""

from typing import Any

from fastapi import FastAPI
from sqlalchemy import Connection, select

from app.analytics import models
from app.ledger import projections


def stored(conn: Connection) -> dict[str, set[tuple[Any, ...]]]:
    """Every rollup row, counts that add up to zero left out."""
    tables: dict[str, set[tuple[Any, ...]]] = {}
    for table in models.ROLLUP_TABLES:
        rows = conn.execute(select(table)).all()
        tables[table.name] = {tuple(r) for r in rows if any(r[len(table.primary_key) :])}
    return tables


def recomputed(conn: Connection) -> dict[str, set[tuple[Any, ...]]]:
    outs, cards = projections.recompute(conn)
    rows = {**projections.rollup_rows(outs), models.card_table.name: cards}
    return {
        table.name: {tuple(row[c.name] for c in table.columns) for row in rows[table.name]}
        for table in models.ROLLUP_TABLES
    }


def assert_consistent(app: FastAPI) -> dict[str, set[tuple[Any, ...]]]:
    """The stored rollups equal the recomputed ones, table by table; the stored ones."""
    with app.state.engine.connect() as conn:
        kept, expected = stored(conn), recomputed(conn)
    for name in expected:
        # pytest does not rewrite a helper's asserts: the message shows what differs.
        only_kept, only_expected = kept[name] - expected[name], expected[name] - kept[name]
        assert not only_kept and not only_expected, (name, only_kept, only_expected)
    return kept
