"""The database: a response is sent only after its transaction has committed; the schema is
the models' schema."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import SQLModel

from app.db import WriteSessionDep, make_engine
from app.merchants.models import Merchant
from tests.helpers.shops import Shop


def test_a_failed_commit_is_never_answered_with_success(app: FastAPI, shop: Shop) -> None:
    @app.post("/test-only/duplicate-merchant")
    def duplicate(session: WriteSessionDep) -> dict[str, str]:
        # Not flushed: the unique slug is only violated at commit, after the handler returned.
        session.add(Merchant(slug=shop.slug, name="Copy", created_at=app.state.clock()))
        return {"status": "saved"}

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/test-only/duplicate-merchant")
    assert response.status_code == 500
    assert response.json() != {"status": "saved"}


def test_the_migrations_make_exactly_the_schema_the_models_describe(database_url: str) -> None:
    """Schema only through Alembic: a model changed without a migration (or the other way round)
    shows here, on whichever database the suite runs."""
    import app.models  # noqa: F401  (every table on the metadata)

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            drift = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()
    assert drift == []
