"""The request session: a response is sent only after its transaction has committed."""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.db import WriteSessionDep
from app.merchants.models import Merchant
from tests.conftest import Shop


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
