"""Owner passwords: a length floor and zxcvbn's check against common passwords, patterns and
the owner's own e-mail address, wherever a password is set (the account page, the CLI)."""

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.merchants import service
from app.merchants.exceptions import MerchantError
from app.merchants.models import Owner
from tests.helpers.cli import Treu, hermetic_env
from tests.helpers.pages import HTML, form_token, log_in
from tests.helpers.shops import Shop

EMAIL = "owner@cafe-sonne.example"
TRIVIAL = ["aaaaaaaaaa", "password123", "1234567890", "qwertzuiop", "cafesonne2026"]
GOOD = ["correct horse battery staple", "Hafermilch am Dienstagmorgen", "a new long password"]


@pytest.mark.parametrize("password", TRIVIAL)
def test_trivial_passwords_are_refused(password: str) -> None:
    assert service.password_problem(password, email=EMAIL) == "guessable"


@pytest.mark.parametrize("password", GOOD)
def test_a_decent_passphrase_is_accepted(password: str) -> None:
    assert service.password_problem(password, email=EMAIL) is None


def test_length_is_checked_first() -> None:
    assert service.password_problem("Zq8#", email=EMAIL) == "short"
    assert service.password_problem("correct horse " * 15, email=EMAIL) == "long"
    # Only the first 72 characters are scored: a common one with a tail is still refused.
    assert service.password_problem("a" * 72 + "Zq8#xT", email=EMAIL) == "guessable"


def test_generated_passwords_pass() -> None:
    for _ in range(50):
        password = service.new_password()
        assert service.password_problem(password, email=EMAIL) is None, password


def test_set_owner_password_refuses_a_trivial_one(app: FastAPI, shop: Shop) -> None:
    with Session(app.state.engine) as session:
        owner = session.exec(select(Owner).where(Owner.email == shop.owner_email)).one()
        before = owner.password_hash
        with pytest.raises(MerchantError) as refused:
            service.set_owner_password(session=session, owner=owner, password="password123")
        assert refused.value.code == "password-guessable"
        assert "too easy to guess" in refused.value.detail
        assert owner.password_hash == before


def change_password(client: TestClient, current: str, new: str, language: str) -> object:
    headers = {**HTML, "Accept-Language": language}
    token = form_token(client.get("/merchant/account", headers=headers).text)
    data = {"csrf_token": token, "current": current, "new": new, "repeat": new}
    return client.post("/merchant/account/password", data=data, headers=headers,
                       follow_redirects=False)  # fmt: skip


def test_the_account_page_refuses_a_trivial_password_in_the_owners_language(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    log_in(client, shop.owner_email, shop.owner_password)
    german = change_password(client, shop.owner_password, "aaaaaaaaaa", "de")
    assert german.status_code == 400  # type: ignore[attr-defined]
    assert "Dieses Passwort ist zu leicht zu erraten" in german.text  # type: ignore[attr-defined]
    english = change_password(client, shop.owner_password, "password123", "en")
    assert "This password is too easy to guess" in english.text  # type: ignore[attr-defined]
    with TestClient(app) as fresh:
        assert log_in(fresh, shop.owner_email, shop.owner_password).status_code == 303
    done = change_password(client, shop.owner_password, "Hafermilch am Dienstagmorgen", "en")
    assert done.status_code == 303  # type: ignore[attr-defined]


def test_the_cli_refuses_a_trivial_password(database_url: str, tmp_path: Path) -> None:
    treu = Treu(tmp_path / "data", database_url, hermetic_env())
    treu("init")
    treu.json("merchant", "create", "--name", "Café Sonne", "--stamps-required", "10",
              "--reward", "1 free coffee", "--slug", "sonne")  # fmt: skip
    refused = treu("merchant", "password", "--merchant", "sonne", "--password", "password123",
                   ok=False)  # fmt: skip
    assert refused.exit_code != 0 and "too easy to guess" in refused.output
    generated = treu.json("merchant", "password", "--merchant", "sonne")
    assert service.password_problem(generated["owner_password"]) is None
