"""AppError → RFC 9457 application/problem+json; validation and HTTP errors use the same shape."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("treu")

PROBLEM_JSON = "application/problem+json"


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


def error_page(
    request: Request, status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    from app.web import render

    # The template translates title and detail into the visitor's language.
    response = render(request, "error.html", status_code=status, title=title, detail=detail)
    response.headers.update(headers or {})
    return response


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if wants_html(request):
        return error_page(request, exc.status, exc.title, exc.detail, exc.headers)
    return JSONResponse(
        exc.problem(), status_code=exc.status, headers=exc.headers, media_type=PROBLEM_JSON
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(400, "Malformed JSON", "The request body is not valid JSON.")
    detail = "; ".join(_describe(e) for e in errors[:5])
    fields = [{"field": _field(e), "message": e.get("msg")} for e in errors[:20]]
    return problem_response(422, "Invalid request", detail, errors=fields)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    titles = {404: "Not found", 405: "Method not allowed", 413: "Request too large"}
    title = titles.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404:
        detail = "There is nothing at this address."
    headers = dict(exc.headers or {})
    if wants_html(request):
        return error_page(request, exc.status_code, title, detail, headers)
    return problem_response(exc.status_code, title, detail, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The message and traceback only: never the request (its path may hold a card token).
    log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
    title, detail = "Internal error", "Something went wrong on our side."
    if wants_html(request):
        return error_page(request, 500, title, detail)
    return problem_response(500, title, detail)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
