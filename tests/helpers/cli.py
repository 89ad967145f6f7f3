"""The `treu` command, run in-process against one data dir and database."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.cli import cli
from app.config import Settings
from app.db import make_engine
from app.main import create_app

KEY_VARS = ("TREU_SIGNING_KEY", "TREU_RETIRED_SIGNING_KEYS", "TREU_HOLDER_KEY",
            "TREU_CARD_REF_KEY", "TREU_WALLET_KEY", "TREU_SESSION_KEY")  # fmt: skip


@dataclass
class Treu:
    """The `treu` command bound to one data dir and database."""

    data_dir: Path
    database_url: str
    env: dict[str, str | None]

    def __call__(self, *args: str, ok: bool = True) -> Result:
        options = ["--data-dir", str(self.data_dir), "--database-url", self.database_url,
                   "--public-url", "http://treu.test"]  # fmt: skip
        result = CliRunner().invoke(cli, [*options, *args], env=self.env)
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def settings(self) -> Settings:
        return Settings(
            data_dir=self.data_dir, database_url=self.database_url, public_url="http://treu.test"
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        engine = make_engine(self.database_url)
        try:
            with Session(engine) as session:
                yield session
        finally:
            engine.dispose()

    @contextmanager
    def api(self) -> Iterator[TestClient]:
        """A fresh treu app on this data dir and database (a restarted server)."""
        app = create_app(self.settings())
        try:
            with TestClient(app, raise_server_exceptions=False) as client:
                yield client
        finally:
            app.state.engine.dispose()


def hermetic_env(**keys: str) -> dict[str, str | None]:
    """No key from the calling shell leaks in; only the keys given."""
    env: dict[str, str | None] = dict.fromkeys(KEY_VARS)
    env.update({f"TREU_{name.upper()}": value for name, value in keys.items()})
    return env


def initialised(database_url: str, tmp_path: Path) -> Treu:
    """`treu` on a data dir in tmp_path and the test's database, after `treu init`."""
    command = Treu(tmp_path / "data", database_url, hermetic_env())
    command("init")
    return command
