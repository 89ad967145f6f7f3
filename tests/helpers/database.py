"""The test database: SQLite by default, PostgreSQL when TREU_TEST_DATABASE_URL is set."""

import os

from sqlalchemy import inspect, text

from app.db import make_engine

PG_URL = os.environ.get("TREU_TEST_DATABASE_URL", "")


def database_text(url: str) -> str:
    """Every row of every table, as text: what a copy of the database would reveal."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            return "\n".join(
                repr(row)
                for table in tables
                for row in conn.execute(text(f'SELECT * FROM "{table}"'))
            )
    finally:
        engine.dispose()
