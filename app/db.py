"""Engine, metadata naming convention and the request session (the only place that commits)."""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, SQLModel

# Stable constraint names make Alembic migrations reviewable and identical on both databases.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and explicit transaction control."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return create_engine(
            url, pool_size=10, max_overflow=20, pool_pre_ping=True, hide_parameters=True
        )
    # hide_parameters: an error message must never carry a row's values into a log.
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # pysqlite's own transaction handling would start transactions too late to take the
        # write lock up front; we emit BEGIN ourselves (SQLAlchemy's documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL survives a killed process (the WAL is in the OS page cache); only a power cut
        # can lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock at BEGIN so that two writers never deadlock on the upgrade
        # from a read lock (SQLAlchemy ignores with_for_update() on SQLite).
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def write_engine(engine: Engine) -> Engine:
    """The same pool, but transactions take SQLite's write lock at BEGIN."""
    if is_sqlite(engine):
        return engine.execution_options(sqlite_immediate=True)
    return engine


def _session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_session(request: Request) -> Iterator[Session]:
    """Read-mostly request session; commits once at the end, rolls back on any error."""
    yield from _session(request.app.state.engine)


def get_write_session(request: Request) -> Iterator[Session]:
    """Request session for routes that write: takes the write lock up front on SQLite."""
    yield from _session(write_engine(request.app.state.engine))


# scope="function": commit before the response is sent, so a 2xx always means "committed" and a
# failed commit reaches the client as an error (FastAPI's default ends after the response).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]
