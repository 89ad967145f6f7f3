"""The API's documentation: Swagger UI at /docs, a page per problem type, the OpenAPI extras.

- `/docs` serves Swagger UI from npm's swagger-ui-dist (app.web.assets), started by
  static/js/docs.js. Its Content-Security-Policy allows exactly those files (a nonce per
  answer), the page's own requests and images, and nothing else: no CDN, no inline script.
- A problem's `type` is `{public_url}/problems/{code}` (or `/problems/{status}` for a refusal
  without a code): `/problems` lists what each means. A test holds the list to every code the
  code raises.
- `document_api` adds what FastAPI cannot see: how a request authenticates (the device secret,
  the owner's session cookie), the 415 of every JSON body, and no 413 on a GET.
"""

import secrets
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, iter_route_contexts

from app.errors import NotFound, problem_responses, status_meaning
from app.merchants import auth
from app.merchants.dependencies import DEVICE_SECRET, current_device
from app.web import render

router = APIRouter(include_in_schema=False)

OPENAPI_URL = "/openapi.json"
SWAGGER_UI = "/static/vendor/swagger-ui"
OWNER_SESSION = "ownerSession"

# code → (title, what it means and what to do). Codes are stable: clients (the till among them)
# key their own wording on them.
PROBLEMS: dict[str, tuple[str, str]] = {
    # the request itself
    "control-character": ("Control character in the address",
        "The path or query holds a control character (NUL, a line break, …). No address of "
        "treu has one: fix the link or the client that built it."),
    "unsupported-media-type": ("Unsupported Media Type",
        "The API reads JSON bodies only. Send the body as JSON with "
        "Content-Type: application/json (a form-encoded body is refused)."),
    "bad-idempotency-key": ("Bad Idempotency-Key",
        "An Idempotency-Key is 1 to 255 printable ASCII characters."),
    "idempotency-mismatch": ("Idempotency-Key reused",
        "This Idempotency-Key was already used for another request (another card, count or "
        "program). Use a new key for a new request."),
    "in-flight": ("Request in progress",
        "A request with the same Idempotency-Key is still being processed. Retry after the "
        "seconds in Retry-After: the first answer is then replayed."),
    "conflict": ("Conflict",
        "The request collided with one made at the same moment. Reload and try again."),
    "rate-limited": ("Too many requests",
        "This client made too many requests of this kind. Wait for the seconds in Retry-After."),
    "unavailable": ("Temporarily unavailable",
        "treu cannot read or save data just now (the database, its disk or the ledger writer). "
        "The request may or may not have been saved: send it again after Retry-After with the "
        "same Idempotency-Key, which makes the retry safe."),
    # devices and owners
    "no-device": ("No device secret",
        "Device routes need the till's secret: Authorization: Bearer <device secret>."),
    "unknown-device": ("Unknown device",
        "No paired till has this secret. Pair the till again."),
    "device-revoked": ("Device revoked",
        "The shop owner switched this till off. Pair it again to keep using it; its queued "
        "offline stamps are dropped."),
    "login-required": ("Please log in",
        "This needs the shop owner's session: log in at /merchant/login first."),
    "csrf": ("Form expired",
        "The form was open too long or did not come from treu's own page. Reload it."),
    "pairing-unknown": ("Unknown pairing code", "No pairing code like this was made."),
    "pairing-used": ("Pairing code already used",
        "Each pairing code pairs one till. Make a new one on the devices page."),
    "pairing-expired": ("Pairing code expired",
        "Pairing codes are valid for 10 minutes. Make a new one on the devices page."),
    # cards
    "not-a-card": ("Not a treu card",
        "The text holds no valid card token (or it was damaged, or signed by another treu). "
        "Scan it again."),
    "unknown-card": ("Unknown card", "The card is genuine but not known to this treu."),
    "card-deleted": ("Card deleted",
        "The card's holder deleted it: it collects and redeems nothing any more."),
    "bad-recovery-code": ("Not a recovery code",
        "A recovery code is 26 letters and digits, in groups of four."),
    # stamps, rewards, undo
    "unknown-program": ("Unknown program", "This shop has no stamp program with this id."),
    "program-paused": ("Program paused",
        "The shop paused this program: it takes no stamps now (rewards can still be redeemed)."),
    "program-ended": ("Program ended",
        "The shop archived this program: it takes no stamps, and rewards already collected can "
        "still be redeemed until the shop closes it."),
    "program-closed": ("Program closed",
        "The shop closed this program: nothing can be stamped or redeemed in it any more."),
    "unknown-reward": ("Unknown reward",
        "The program has no reward level with this reward_id. The till's programs list the "
        "levels; leave reward_id out for the program's main reward."),
    "unknown-tier": ("Unknown tier", "This shop has no tier with this id."),
    "unknown-promotion": ("Unknown promotion", "This shop has no promotion with this id."),
    "too-many-stamps": ("Too many stamps",
        "More stamps in one scan than the program allows (max_stamps_per_scan)."),
    "cooldown": ("Already stamped",
        "The card was stamped in this program moments ago. Retry-After says when it can be "
        "stamped again."),
    "daily-cap": ("Daily limit reached",
        "The card got the program's daily maximum of stamps at this shop today."),
    "no-reward-due": ("No reward due", "The card has fewer stamps than a reward needs."),
    "unknown-entry": ("Unknown entry",
        "No stamp or redemption with this id at this shop."),
    "not-voidable": ("Cannot be undone", "Only a stamp or a redemption can be undone."),
    "undo-window": ("Undo window passed",
        "Entries can be undone only within the undo window (10 minutes by default)."),
    "voided": ("Already undone", "This entry was undone before."),
    "void-would-go-negative": ("Cannot undo",
        "These stamps were redeemed since. Undo the redemption first."),
    # claim codes
    "unknown-claim": ("Unknown code", "No claim code like this was made (by this shop)."),
    "claim-expired": ("Code expired",
        "Claim codes are valid for two minutes. Ask at the till for a new one."),
    "claim-used": ("Code already used", "Each claim code can be claimed by one card, once."),
    "claim-revoked": ("Code no longer valid",
        "The till that made the code was switched off. Ask at the till for a new one."),
    "not-a-claim-url": ("Not a claim URL",
        "A till's QR route draws only claim URLs of this treu."),
    # feedback
    "unknown-merchant": ("Unknown shop", "There is no shop with this name (slug) here."),
    "no-recent-visit": ("No recent visit",
        "Feedback needs a visit (a stamp or redemption not undone) in the last 30 days."),
    "already-given": ("Feedback already given",
        "There is feedback for this visit already; it can be changed for 24 hours."),
    "edit-window-closed": ("Too late to change",
        "Feedback can be changed for 24 hours after it was given."),
    "unknown-feedback": ("Unknown feedback", "There is no such feedback (for this card)."),
    "feedback-rate-limited": ("Too much feedback",
        "Too much feedback from this card or for this shop in a short time. Retry later."),
    "comment-too-long": ("Comment too long", "A comment has at most 500 characters."),
    "unknown-tag": ("Unknown tag", "Choose tags from the ones this shop offers."),
    "tag-too-long": ("Tag too long", "A tag is too long for the shop's list."),
    "too-many-tags": ("Too many tags", "A shop offers at most 8 tags."),
    "empty-reply": ("Empty reply", "Write a reply first."),
    "reply-too-long": ("Reply too long", "A reply has at most 1000 characters."),
    "no-review-link": ("No review page", "This shop has no public review page yet."),
    # the merchant area
    "name": ("Name missing", "A merchant needs a name."),
    "label": ("Name missing", "A device needs a name."),
    "review-link": ("Invalid review link",
        "The review link must be a Google Place ID or an address starting with https://."),
    "period-dates": ("Invalid period", "A custom period needs a start and an end date."),
    "period-order": ("Invalid period", "The period's start comes after its end."),
    "period-future": ("Invalid period", "The period lies in the future."),
    "period-length": ("Invalid period", "A period can be at most two years long."),
}  # fmt: skip


def problem_page(code: str) -> tuple[str, str, int | None]:
    """(title, meaning, status) of a problem type: a code, or an HTTP status without one."""
    if code in PROBLEMS:
        return (*PROBLEMS[code], None)
    if code.isdigit() and len(code) == 3 and 400 <= int(code) <= 599:
        status = int(code)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return phrase, status_meaning(status) or phrase, status
    raise NotFound("There is no such problem type.", title="Unknown problem type")


@router.get("/problems", response_class=HTMLResponse)
def problems_page(request: Request) -> HTMLResponse:
    """Every problem code the API answers with, and what it means."""
    return render(request, "problems.html", problems=sorted(PROBLEMS.items()))


@router.get("/problems/{code}", response_class=HTMLResponse)
def problem_type(code: str, request: Request) -> HTMLResponse:
    """What one problem `type` means (the URI every problem answer names)."""
    title, meaning, status = problem_page(code)
    return render(request, "problem.html", code=code, title=title, meaning=meaning, status=status)


# --- Swagger UI ---------------------------------------------------------------------------------


def docs_csp(nonce: str) -> str:
    """Swagger UI's files and start script (by the nonce on their tags), the page's own
    requests (the document, "Try it out") and its images: nothing else."""
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'none'",
        )
    )


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    """The API's OpenAPI document in Swagger UI, served by treu itself (no CDN)."""
    nonce = secrets.token_urlsafe(16)
    response = render(
        request, "docs.html", nonce=nonce, openapi_url=OPENAPI_URL,
        bundle=f"{SWAGGER_UI}/swagger-ui-bundle.js", css=f"{SWAGGER_UI}/swagger-ui.css",
    )  # fmt: skip
    response.headers["Content-Security-Policy"] = docs_csp(nonce)
    return response


# --- the OpenAPI document -----------------------------------------------------------------------

SECURITY_SCHEMES = {
    DEVICE_SECRET: {
        "type": "http",
        "scheme": "bearer",
        "description": "A paired till's device secret (from pairing at /till, or "
        "`treu device create`).",
    },
    OWNER_SESSION: {
        "type": "apiKey",
        "in": "cookie",
        "name": auth.SESSION_COOKIE,
        "description": "The shop owner's session, set by logging in at /merchant/login.",
    },
}
_DEVICE = {current_device}
_OWNER = {auth.current_login, auth.current_owner, auth.current_merchant}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def document_api(app: FastAPI) -> None:
    """Add the security schemes, each route's authentication, the 415 of JSON bodies, and take
    the 413 off GET routes (they read no body), once, when the document is first made."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # FastAPI's, made again only when the routes change
        if "securitySchemes" not in schema.get("components", {}):
            _extend(app, schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _extend(app: FastAPI, schema: dict[str, Any]) -> None:
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    unsupported = problem_responses(415)[415]
    # Each route as FastAPI documents it (included routers' settings applied).
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        calls = set(_calls(route.dependant))
        schemes = ((DEVICE_SECRET, _DEVICE), (OWNER_SESSION, _OWNER))
        security: list[dict[str, list[str]]] = [
            {name: []} for name, needs in schemes if calls & needs
        ]
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            if security:
                operation.setdefault("security", security)
            responses = operation["responses"]
            if method in ("GET", "HEAD"):
                responses.pop("413", None)
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                responses.setdefault("415", unsupported)
            operation["responses"] = dict(sorted(responses.items()))
