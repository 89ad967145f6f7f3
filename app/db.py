"""Engine, metadata naming convention and the request session (the only place that commits)."""

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine, bindparam, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlmodel import Session, SQLModel

# Stable constraint names make Alembic migrations reviewable and identical on both databases.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


T = TypeVar("T")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, single: bool = False) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and explicit transaction control.

    single: one connection, for one thread only (see loop_engine).
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        # connect_timeout: a database host that drops packets is a fault (503) within seconds,
        # not after the operating system's TCP timeout.
        return create_engine(
            url,
            pool_size=10,
            max_overflow=20,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args={"connect_timeout": 5},
        )
    # hide_parameters: an error message must never carry a row's values into a log.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        hide_parameters=True,
        **({"poolclass": StaticPool} if single else {}),
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
        # Straight on the driver (exec_driver_sql() cost the ledger writer ~20 µs a batch);
        # its errors raised as SQLAlchemy's, as every other statement's.
        sql = "BEGIN IMMEDIATE" if conn.get_execution_options().get("sqlite_immediate") else "BEGIN"
        try:
            conn.connection.driver_connection.execute(sql)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(sql, None, exc, Exception) from exc

    return engine


def loop_engine(url: str) -> Engine | None:
    """SQLite: an engine of one connection for the reads the event loop makes itself.

    Not the app's pool: worker threads may hold every connection in it (a burst of dashboard
    pages), and waiting for one on the event loop would hold up every request, stamps too. One
    connection is enough, the event loop runs one thing at a time; giving it back ends its read
    transaction, so the next read sees the latest commits. None on PostgreSQL: a read there is a
    network round trip, for a worker thread.
    """
    return make_engine(url, single=True) if url.startswith("sqlite") else None


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


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def loop_engine_of(request: Request) -> Engine | None:
    """The event loop's own read connection (SQLite), or None (see loop_engine)."""
    engine: Engine | None = request.app.state.loop_engine
    return engine


def in_write_session(engine: Engine, work: Callable[..., T], /, **kwargs: Any) -> T:
    """Run work(session=…, **kwargs) in a write transaction of its own, committed here.

    For the few writes that must not be part of a request's transaction (the card row a card
    page updates: never in the same transaction as anything a merchant sees).
    """
    with Session(write_engine(engine), expire_on_commit=False) as session:
        result = work(session=session, **kwargs)
        session.commit()
        return result


# scope="function": commit before the response is sent, so a 2xx always means "committed" and a
# failed commit reaches the client as an error (FastAPI's default ends after the response).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]


# --- statements on the driver ------------------------------------------------------------------


class Prepared:
    """A Core statement compiled once per dialect and run on the driver's own cursor.

    SQLAlchemy's execute() spends 50-100 µs of Python per statement (execution context, bind
    and result processing, events); the ledger writer runs a few statements per stamp, one
    thread for all requests, so that was most of its time. Here the SQL text, the order of its
    parameters and their bind processors (e.g. how SQLite stores a datetime) come from SQLAlchemy
    once; a call only converts each distinct value once and hands a tuple or dict to the driver.
    Rows come back as named tuples of the driver's raw values (SQLite: dates as text). Errors
    are raised as SQLAlchemy's, so callers catch one family whichever way a statement ran.
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self.row: Any = namedtuple("Row", list(statement.exported_columns.keys()), rename=True)  # type: ignore[misc]
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Any) -> "_Compiled":
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = _Compiled(self.statement, dialect)
        return found

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Run once; the rows it returns (none for a statement without RETURNING)."""
        return self._run(conn, params, None)

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        rows = self.all(conn, params)
        return rows[0] if rows else None

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per parameter set, in one driver call."""
        self._run(conn, None, rows)

    def _run(
        self,
        conn: Connection,
        params: Mapping[str, Any] | None,
        many: Sequence[Mapping[str, Any]] | None,
    ) -> list[Any]:
        c = self.compiled(conn.dialect)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if many is not None:
                cursor.executemany(c.sql, [c.bind(r) for r in many])
                return []
            cursor.execute(c.sql, c.bind(params or {}))
            if cursor.description is None:
                return []
            return list(map(self.row._make, cursor.fetchall()))
        except conn.dialect.loaded_dbapi.Error as exc:
            # The parameters stay out of the error: they can hold a holder or a key.
            raise DBAPIError.instance(c.sql, None, exc, Exception, hide_parameters=True) from exc
        finally:
            cursor.close()


class _Compiled:
    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql: str = compiled.string
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        # (name, default, processor) per distinct parameter; the driver's order if positional.
        self.params = [
            (name, bind.value, bind.type.dialect_impl(dialect).bind_processor(dialect))
            for name, bind in by_name.items()
        ]
        self.order: list[str] | None = list(compiled.positiontup) if compiled.positional else None
        self._last: dict[str, tuple[Any, Any]] = {}

    def bind(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        bound = {}
        last = self._last
        for name, default, process in self.params:
            value = values.get(name, default)
            if process is not None and value is not None:
                # A batch's commands share their instant: convert it once, not once per use.
                seen = last.get(name)
                if seen is not None and seen[0] == value:
                    value = seen[1]
                else:
                    converted = process(value)
                    last[name] = (value, converted)
                    value = converted
            bound[name] = value
        if self.order is None:
            return bound
        return tuple([bound[name] for name in self.order])


def in_list(column: Any, size: int) -> Any:
    """`column IN (:v0, …)` with `size` parameters, for a Prepared statement (see in_values)."""
    return column.in_([bindparam(f"v{i}") for i in range(size)])


def in_values(values: Sequence[Any]) -> dict[str, Any]:
    """The parameters of an in_list: the values, the last one repeated up to a power of two, so
    that an IN list comes in few lengths (len() of this), and so in few statements to prepare."""
    size = 1 << (len(values) - 1).bit_length()
    padded = [*values, *[values[-1]] * (size - len(values))]
    return {f"v{i}": value for i, value in enumerate(padded)}


def in_read_session(engine: Engine, work: Callable[..., T], /, **kwargs: Any) -> T:
    """Run work(session=…, **kwargs) in a read session of its own (an async route's reads, on a
    worker thread: see app.claims.router)."""
    with Session(engine, expire_on_commit=False) as session:
        return work(session=session, **kwargs)
