"""The input policy: what text, ids and dates a request may carry, for every route at once.

PostgreSQL refuses a NUL in text and an integer beyond 32 bits, and a shop's local time cannot
be worked out for the year 1. Input like that is the client's mistake, so it is refused with a
4xx before it reaches a query, on SQLite and PostgreSQL alike, instead of failing there as a 500:

- the address: `app.web.security.InputPolicy` (ASGI middleware) refuses a path or query with a
  control character (`control_in_address`): 400 `control-character`;
- bodies and form fields: `Line` (one line of text), `Text` (may hold line breaks and tabs),
  `Id` (1 to 2^31-1) and `Day` are the types of every text, id and date field: 422 outside;
- dates typed into a page's form: `parse_day` (None outside the policy's days).
"""

import re
from datetime import date
from typing import Annotated
from urllib.parse import unquote_plus

from annotated_types import Ge, Le
from pydantic import StringConstraints

# C0 controls (NUL among them), DEL and C1 controls. As patterns the same for pydantic-core (a
# Rust regex, checked without a Python call: the stamp's token is one) and for OpenAPI readers.
LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
# Text a person writes or a scanner types may also hold tabs and line breaks.
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
POLICY_PATTERNS = (LINE_PATTERN, TEXT_PATTERN)
CONTROL_MESSAGE = "must not contain control characters (such as NUL)"

# PostgreSQL's INTEGER, the type of every id column.
MAX_ID = 2**31 - 1
# The days a shop's local calendar is worked out for (rollup day 0 is 1970-01-01).
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)

Line = Annotated[str, StringConstraints(pattern=LINE_PATTERN)]
Text = Annotated[str, StringConstraints(pattern=TEXT_PATTERN)]
Id = Annotated[int, Ge(1), Le(MAX_ID)]
Day = Annotated[date, Ge(FIRST_DAY), Le(LAST_DAY)]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def parse_day(text: str) -> date | None:
    """A date typed as YYYY-MM-DD within the policy's days, else None."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def control_in_address(path: str, query_string: bytes) -> bool:
    """Whether the (decoded) path or the query, once percent-decoded, holds a control character."""
    if _CONTROL.search(path):
        return True
    return (
        bool(query_string)
        and _CONTROL.search(unquote_plus(query_string.decode("utf-8", "replace"))) is not None
    )
