"""AppError → RFC 9457 application/problem+json; validation and HTTP errors use the same shape."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

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
    400: "Malformed JSON, or a malformed header",
    401: "No valid device secret (Authorization: Bearer) or merchant login",
    403: "Not allowed for this card or login",
    404: "Unknown card, entry, code or shop",
    409: "Conflicts with the state (no reward due, already undone, a retry still running)",
    410: "The card was deleted by its owner, or the code has expired or was used",
    413: "The request body is too large",
    422: "The body or a parameter is invalid (an Idempotency-Key reused with another body)",
    429: "Too soon (cooldown, daily cap or too many tries): see Retry-After",
}


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

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://treu.example/problems/{self.code or self.status}",
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


def problem_response(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _field(error: dict[str, Any]) -> str:
    return ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))


def _describe(error: dict[str, Any]) -> str:
    where, message = _field(error), str(error.get("msg", "invalid"))
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
        return JSONResponse(
            exc.problem(), status_code=exc.status, headers=exc.headers, media_type=PROBLEM_JSON
        )

    return handle


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(400, "Malformed JSON", "The request body is not valid JSON.")
    detail = "; ".join(_describe(e) for e in errors[:5])
    fields = [{"field": _field(e), "message": e.get("msg")} for e in errors[:20]]
    return problem_response(422, "Invalid request", detail, errors=fields)


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
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error(page))
    app.add_exception_handler(Exception, _unexpected(page))
