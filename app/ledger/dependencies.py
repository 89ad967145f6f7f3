"""The ledger's request side: the Idempotency-Key header and the ledger writer."""

import re
from typing import Annotated

from fastapi import Header, Request

from app.errors import AppError
from app.ledger.writer import LedgerWriter, WriterProcess

KEY_HELP = (
    "Any unique string (a UUID): a retry with the same key returns the first result; kept at "
    "least 72 hours."
)
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", description=KEY_HELP)]
_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")


def check_idempotency_key(key: str | None) -> None:
    """An Idempotency-Key is 1 to 255 printable ASCII characters (or none)."""
    if key is not None and not _KEY_PATTERN.fullmatch(key):
        raise AppError(
            "An Idempotency-Key is 1 to 255 printable ASCII characters.",
            title="Bad Idempotency-Key",
            code="bad-idempotency-key",
        )


def writer_of(request: Request) -> LedgerWriter | WriterProcess:
    writer: LedgerWriter | WriterProcess = request.app.state.writer
    return writer


def in_flight_of(request: Request) -> set[tuple[int, str]]:
    """The (merchant, Idempotency-Key) pairs whose first request is still being written."""
    in_flight: set[tuple[int, str]] = request.app.state.in_flight
    return in_flight
