"""The friendly error page a person in a browser sees (installed by app.main)."""

from fastapi import Request, Response

from app.web import render


def error_page(
    request: Request, status: int, title: str, detail: str, headers: dict[str, str] | None
) -> Response:
    # The template translates title and detail into the visitor's language.
    response = render(request, "error.html", status_code=status, title=title, detail=detail)
    response.headers.update(headers or {})
    return response
