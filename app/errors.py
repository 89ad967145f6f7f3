"""AppError → RFC 9457 application/problem+json; validation and HTTP errors use the same shape."""

import errno
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.inputs import CONTROL_MESSAGE, POLICY_PATTERNS

log = logging.getLogger("treu")

PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    """RFC 9457 problem details: how every error is answered (OpenAPI only)."""

    type: str
    title: str
    status: int
    detail: str = Field(description="What went wrong, in words for a person")
    code: str | None = Field(default=None, description="A stable name for the kind of problem")


_WHEN = {
    400: "Malformed JSON, a malformed header, or a control character in the address",
    401: "No valid device secret (Authorization: Bearer) or merchant login",
    403: "Not allowed for this card or login",
    404: "Unknown card, entry, code or shop",
    409: "Conflicts with the state (no reward due, already undone, a retry still running)",
    410: "The card was deleted by its owner, or the code has expired or was used",
    413: "The request body is too large",
    415: "The body is not JSON (send it as Content-Type: application/json)",
    422: "The body or a parameter is invalid (an Idempotency-Key reused with another body)",
    429: "Too soon (cooldown, daily cap or too many tries): see Retry-After",
    503: "The database, its disk or the ledger writer failed for a moment: see Retry-After",
}


def status_meaning(status: int) -> str | None:
    """When the API answers with this status (for the problem type pages)."""
    return _WHEN.get(status)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI: the problems a route or router may answer with."""
    schema = Problem.model_json_schema()
    return {
        status: {"description": _WHEN[status], "content": {PROBLEM_JSON: {"schema": schema}}}
        for status in statuses
    }


class AppError(Exception):
    """An expected refusal: rendered as a problem with a human-readable detail."""

    status = 400
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.headers = headers or {}
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        # Refusals cross the ledger writer's pipe: rebuilt from their fields, whatever the
        # arguments a subclass's __init__ takes.
        return (_restore, (type(self), self.__dict__))

    def problem(self, base_url: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {
            # A page of this instance explains each kind of problem (app.web.api_docs).
            "type": f"{base_url}/problems/{self.code or self.status}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.code:
            body["code"] = self.code
        return body


def _restore(cls: type[AppError], fields: dict[str, Any]) -> AppError:
    error = cls.__new__(cls)
    Exception.__init__(error, fields["detail"])
    error.__dict__.update(fields)
    return error


class NotFound(AppError):
    status = 404
    title = "Not found"


class Unauthorized(AppError):
    status = 401
    title = "Unauthorized"


class Conflict(AppError):
    status = 409
    title = "Conflict"


class Unprocessable(AppError):
    status = 422
    title = "Unprocessable request"


class UnsupportedMediaType(AppError):
    status = 415
    title = "Unsupported Media Type"

    def __init__(self) -> None:
        super().__init__(
            "The request body must be JSON, sent with Content-Type: application/json.",
            code="unsupported-media-type",
            headers={"Accept": "application/json"},
        )


def is_json(content_type: str | None) -> bool:
    """Whether a body sent with this Content-Type is read as JSON (none at all is, as in
    FastAPI)."""
    if content_type is None:
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


# --- infrastructure faults: 503 with Retry-After, never 500 ------------------------------------

RETRY_AFTER_SECONDS = 5
# At most one log line per kind of fault in this many seconds (a 3 s database outage once wrote
# a 3 kB traceback per request, 18,642 lines).
FAULT_LOG_SECONDS = 10.0


class Unavailable(AppError):
    """An infrastructure fault (database, disk, connection pool, ledger writer), not a bug and
    not the request's: 503 with Retry-After. A till keeps the stamp and sends it again later
    with the same Idempotency-Key, so nothing is lost or doubled."""

    status = 503
    title = "Temporarily unavailable"

    def __init__(self, fault: str) -> None:
        super().__init__(
            "treu cannot save or read data just now. Please try again in a moment.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            code="unavailable",
        )
        self.fault = fault  # for the log, never in the answer


# SQLite's primary result codes that are the machine's, not the code's.
_SQLITE_FAULTS = {
    5: "database-busy",  # SQLITE_BUSY: the write lock was not free within busy_timeout
    6: "database-busy",  # SQLITE_LOCKED
    7: "out-of-memory",  # SQLITE_NOMEM
    10: "disk-error",  # SQLITE_IOERR
    13: "disk-full",  # SQLITE_FULL: "database or disk is full"
    14: "database-unreachable",  # SQLITE_CANTOPEN
}
# PostgreSQL SQLSTATE classes (and codes) of the same kind.
_SQLSTATE_FAULTS = {
    "08": "database-unreachable",  # connection exception
    "53100": "disk-full",
    "53": "database-busy",  # insufficient resources: too many connections, out of memory
    "57014": "database-busy",  # query cancelled (a statement timeout)
    "57": "database-unreachable",  # operator intervention: shutting down, starting up
    "58": "disk-error",  # system error (an I/O error)
}


def fault_of(exc: BaseException) -> str | None:
    """The kind of infrastructure fault `exc` is (or was raised from), or None: a bug, a 500.

    The one place that tells the two apart: the HTTP handlers, the ledger writer and the health
    check all ask here.
    """
    cause: BaseException | None = exc
    for _ in range(5):  # an error raised `from` a fault is that fault
        if cause is None:
            return None
        kind = _fault(cause)
        if kind is not None:
            return kind
        cause = cause.__cause__
    return None


def _fault(exc: BaseException) -> str | None:
    if isinstance(exc, Unavailable):
        return exc.fault
    if isinstance(exc, sa.TimeoutError):
        return "pool-timeout"  # every connection of the pool in use for pool_timeout
    if isinstance(exc, sa.DBAPIError):
        return _database_fault(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk-full"
    return None


def _database_fault(exc: sa.DBAPIError) -> str | None:
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:  # sqlite3: the result code says it, whatever the message
        return _SQLITE_FAULTS.get(code & 0xFF)
    if "database or disk is full" in str(orig):
        return "disk-full"
    if exc.connection_invalidated:  # SQLAlchemy saw the connection drop
        return "database-unreachable"
    if not isinstance(exc, sa.OperationalError | sa.InterfaceError):
        return None  # an integrity or programming error: the code's
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is None:  # no answer from the server at all: refused, reset, timed out
        return "database-unreachable"
    return _SQLSTATE_FAULTS.get(sqlstate) or _SQLSTATE_FAULTS.get(sqlstate[:2])


# A database server's address in a driver's message: the log names no address at all.
_ADDRESS = re.compile(r'"[^"]*"(?=, port)|\b\d{1,3}(?:\.\d{1,3}){3}\b')


def _reason(exc: BaseException) -> str:
    """What went wrong, in one line: the error's class and the driver's own first line (never
    the SQL, its parameters or a file name)."""
    orig = exc.orig if isinstance(exc, sa.DBAPIError) else None
    if orig is not None:
        text = str(orig)
    elif isinstance(exc, OSError):
        text = exc.strerror or ""
    else:
        text = str(exc)
    lines = text.strip().splitlines()
    first = _ADDRESS.sub("…", lines[0].split(" (Background on this error")[0]) if lines else ""
    name = type(orig or exc).__name__
    return f"{name}: {first[:200]}" if first else name


class FaultLog:
    """One log line per kind of fault per `every` seconds; the next line counts the rest.

    A line names the fault and its cause, never the request (its path may hold a card token)
    nor the client's address.
    """

    def __init__(
        self, every: float = FAULT_LOG_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every = every
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def report(self, kind: str, exc: BaseException | str) -> bool:
        """Log `exc` as a fault of `kind` unless one was logged within `every`; True if logged."""
        now = self.clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.every:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return False
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        reason = exc if isinstance(exc, str) else _reason(exc)
        more = ""
        if suppressed and last is not None:
            more = f"; {suppressed} more since the last line {now - last:.0f} s ago"
        fault_log.error("fault %s (%s): answering 503%s", kind, reason, more)
        return True

    def clear(self) -> None:
        """Forget what was logged: the next fault of every kind is logged at once."""
        with self._lock:
            self._last.clear()
            self._suppressed.clear()


fault_log = logging.getLogger("treu.faults")
faults = FaultLog()


def problem_response(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _field(error: dict[str, Any]) -> str:
    return ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))


def _describe(error: dict[str, Any]) -> str:
    where, message = _field(error), _message(error)
    if error.get("type") == "model_attributes_type" and not where:
        return "The request body must be a JSON object (Content-Type: application/json)."
    return f"{where}: {message}" if where else message


def wants_html(request: Request) -> bool:
    """A person in a browser (a page, not the API) gets a friendly page instead of JSON."""
    path = request.url.path
    if path.startswith(("/api/", "/.well-known/", "/static/")):
        return False
    return "text/html" in request.headers.get("accept", "")


# How a person in a browser is shown an error: (request, status, title, detail, headers) → a
# page. The pages' module provides it (app.web.errors) and main installs it: nothing here
# imports a page.
ErrorPage = Callable[[Request, int, str, str, dict[str, str] | None], Response]


def _app_error(page: ErrorPage) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        if wants_html(request):
            return page(request, exc.status, exc.title, exc.detail, exc.headers)
        return _problem(request, exc)

    return handle


def _problem(request: Request, exc: AppError) -> JSONResponse:
    body = exc.problem(request.app.state.settings.base_url)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers, media_type=PROBLEM_JSON)


# What a person in a browser is told when a form or an address fails the input policy.
INVALID_PAGE = (
    "Something in the form or the address cannot be used: a control character, a number out "
    "of range or a date outside the calendar. Go back and check it."
)


def _validation_error(page: ErrorPage) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        if _not_json(request, errors):
            return _problem(request, UnsupportedMediaType())
        if wants_html(request):
            return page(request, 422, "Invalid request", INVALID_PAGE, None)
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem_response(400, "Malformed JSON", "The request body is not valid JSON.")
        detail = "; ".join(_describe(e) for e in errors[:5])
        fields = [{"field": _field(e), "message": _message(e)} for e in errors[:20]]
        return problem_response(422, "Invalid request", detail, errors=fields)

    return handle


def _not_json(request: Request, errors: list[dict[str, Any]]) -> bool:
    """A JSON route sent a body of another type: FastAPI hands the route the raw bytes, which
    fail as a whole body (a form route's errors name its fields)."""
    return not is_json(request.headers.get("content-type")) and any(
        tuple(e.get("loc", ())) == ("body",) and e.get("type") != "missing" for e in errors
    )


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "string_pattern_mismatch" and (
        error.get("ctx", {}).get("pattern") in POLICY_PATTERNS
    ):
        return CONTROL_MESSAGE
    return str(error.get("msg", "invalid"))


def _http_error(page: ErrorPage) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        return _http_problem(page, request, exc)

    return handle


def _http_problem(page: ErrorPage, request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    titles = {404: "Not found", 405: "Method not allowed", 413: "Request too large"}
    title = titles.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404:
        detail = "There is nothing at this address."
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    if wants_html(request):
        return page(request, exc.status_code, title, detail, headers)
    return problem_response(exc.status_code, title, detail, headers=headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method the path takes: Starlette's 405 names only those of the first route that
    matches it (GET /api/v1/cards/{token}, not also DELETE). Asked of the routes themselves,
    one method at a time."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    )


def _unexpected(page: ErrorPage) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        kind = fault_of(exc)
        if kind is not None:
            # The database, the disk or the pool, not the code: 503, and a line now and then.
            faults.report(kind, exc)
            return await _app_error(page)(request, Unavailable(kind))
        # The message and traceback only: never the request (its path may hold a card token).
        log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
        title, detail = "Internal error", "Something went wrong on our side."
        if wants_html(request):
            return page(request, 500, title, detail, None)
        return problem_response(500, title, detail)

    return handle


def install_error_handlers(app: FastAPI, page: ErrorPage) -> None:
    """Every error as a problem (API) or as `page` (a person in a browser)."""
    app.add_exception_handler(AppError, _app_error(page))
    app.add_exception_handler(RequestValidationError, _validation_error(page))
    app.add_exception_handler(StarletteHTTPException, _http_error(page))
    # The errors an infrastructure fault arrives as are answered where they are raised (a bug
    # among them still as a 500): what reaches Starlette's last resort is also printed, with
    # its traceback, by the server, once per request.
    for error in (sa.DBAPIError, sa.TimeoutError, OSError):
        app.add_exception_handler(error, _unexpected(page))
    app.add_exception_handler(Exception, _unexpected(page))
