"""The API's documentation as a client sees it (app/web/api_docs.py): /docs offers "Authorize"
for the device secret and the owner's session, schema names say what a thing is, a GET
documents no 413, a body that is not JSON is a 415, and every problem `type` is a page of
this instance that says what the problem means."""

import ast
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from app.config import Settings
from app.ledger.direct import DirectStamp
from app.web.api_docs import PROBLEMS
from tests.helpers.api import stamp
from tests.helpers.pages import HTML, log_in_owner
from tests.helpers.shops import Shop

PROBLEM = "application/problem+json"
APP = Path(__file__).resolve().parent.parent / "app"
DEVICE_ROUTES = [
    ("post", "/api/v1/stamps"), ("post", "/api/v1/redemptions"),
    ("post", "/api/v1/entries/{entry_id}/void"), ("get", "/api/v1/till/cards/{token}"),
    ("post", "/api/v1/claims"), ("get", "/api/v1/claims/{code}"), ("get", "/api/v1/till"),
    ("get", "/api/v1/till/qr.svg"),
]  # fmt: skip


def test_docs_offers_authorize_for_the_device_and_the_owner(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["deviceSecret"] == {**schemes["deviceSecret"], "type": "http",
                                       "scheme": "bearer"}  # fmt: skip
    assert schemes["ownerSession"] == {**schemes["ownerSession"], "type": "apiKey",
                                       "in": "cookie", "name": "treu_owner"}  # fmt: skip
    for method, path in DEVICE_ROUTES:
        assert spec["paths"][path][method]["security"] == [{"deviceSecret": []}], path
    assert spec["paths"]["/api/v1/merchant/kpis"]["get"]["security"] == [{"ownerSession": []}]
    # A card's own routes need no login: the token in the path is the card.
    for method, operation in spec["paths"]["/api/v1/cards/{token}"].items():
        assert "security" not in operation, method
    assert "security" not in spec["paths"]["/api/v1/cards"]["post"]


def test_schema_names_have_no_module_paths(client: TestClient) -> None:
    names = client.get("/openapi.json").json()["components"]["schemas"]
    assert names and not [name for name in names if "__" in name or "." in name]


def test_no_get_route_documents_a_body_too_large(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    gets = [(path, ops["get"]) for path, ops in spec["paths"].items() if "get" in ops]
    assert len(gets) > 8
    for path, operation in gets:
        assert "413" not in operation["responses"], path
    assert "413" in spec["paths"]["/api/v1/stamps"]["post"]["responses"]


def test_a_body_that_is_not_json_is_a_415(client: TestClient, shop: Shop, card: str) -> None:
    spec = client.get("/openapi.json").json()
    json_routes = [
        (method, path)
        for path, ops in spec["paths"].items()
        for method, operation in ops.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert ("post", "/api/v1/stamps") in json_routes and len(json_routes) >= 8
    for method, path in json_routes:
        assert "415" in spec["paths"][path][method]["responses"], path
        url = path.format(token=card, code="ABCDEFGHJKLMNPQRSTUV", feedback_id="x", program_id=1)
        for headers, options in (
            ({}, {"data": {"token": card}}),  # a form
            ({"Content-Type": "text/plain"}, {"content": f'{{"token": "{card}"}}'}),
        ):
            response = client.request(method, url, headers={**shop.auth, **headers}, **options)
            assert response.status_code == 415, (path, response.text)
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["code"] == "unsupported-media-type"
            assert response.headers["accept"] == "application/json"
    # JSON under another JSON media type is still JSON.
    typed = {**shop.auth, "Content-Type": "application/json; charset=utf-8"}
    assert stamp(client, shop, card).status_code == 201
    redeem = client.post("/api/v1/redemptions", content=f'{{"token": "{card}"}}', headers=typed)
    assert redeem.status_code == 409  # no reward due: read as JSON, not refused


def test_the_stamps_415_is_the_routes_to_the_byte(
    client: TestClient, shop: Shop, card: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        response = client.post("/api/v1/stamps", data={"token": card}, headers=shop.auth)
        return response.status_code, response.headers.raw, response.content

    direct = answer()

    async def past_it(self: DirectStamp, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    monkeypatch.setattr(DirectStamp, "__call__", past_it)
    assert direct[0] == 415 and answer() == direct


def test_problem_types_are_pages_of_this_instance(
    client: TestClient, shop: Shop, card: str, settings: Settings
) -> None:
    stamp(client, shop, card)
    problems = [
        stamp(client, shop, card).json(),  # cooldown
        client.get("/api/v1/cards/AAAA").json(),  # not-a-card
        client.get("/api/v1/till/qr.svg?text=x", headers=shop.auth).json(),  # not-a-claim-url
        client.post("/api/v1/stamps", data={"token": card}, headers=shop.auth).json(),  # 415
        client.get("/api/v1/cards/a%00").json(),  # control-character
    ]
    for problem in problems:
        assert problem["type"] == f"{settings.base_url}/problems/{problem['code']}"
        page = client.get(problem["type"].removeprefix(settings.base_url), headers=HTML)
        assert page.status_code == 200, problem
        assert PROBLEMS[problem["code"]][1] in page.text.replace("&#39;", "'")
    index = client.get("/problems", headers=HTML)
    assert index.status_code == 200 and all(f"/problems/{code}" in index.text for code in PROBLEMS)
    # A refusal without a code names its status; an unknown type is not found.
    assert "Too Many Requests" in client.get("/problems/429").text
    assert client.get("/problems/no-such-thing").status_code == 404


def problem_codes_raised() -> dict[str, str]:
    """Every `code="…"` given to an error in the app's code: code → where."""
    found: dict[str, str] = {}
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or getattr(node.func, "attr", None) == "render":
                continue
            if isinstance(node.func, ast.Name) and node.func.id == "render":
                continue
            for keyword in node.keywords:
                value = keyword.value
                if keyword.arg == "code" and isinstance(value, ast.Constant) and value.value:
                    found[str(value.value)] = f"{path.relative_to(APP.parent)}:{node.lineno}"
    return found


def test_every_problem_code_has_a_page() -> None:
    raised = problem_codes_raised()
    assert len(raised) > 40
    missing = {code: where for code, where in raised.items() if code not in PROBLEMS}
    assert not missing, (
        f"add these codes, with what they mean, to PROBLEMS in app/web/api_docs.py: {missing}"
    )
    unused = set(PROBLEMS) - set(raised)
    assert not unused, f"PROBLEMS lists codes nothing raises any more: {unused}"


def test_docs_serve_swagger_ui_from_treu_under_a_csp_for_exactly_it(client: TestClient) -> None:
    docs = client.get("/docs", headers=HTML)
    assert docs.status_code == 200
    csp = docs.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and "script-src 'nonce-" in csp and "style-src 'nonce-" in csp
    assert "unsafe-inline" not in csp and "http" not in csp and "default-src 'none'" in csp
    tags = re.findall(r"<(?:script|link)[^>]*>", docs.text)
    # Swagger UI's stylesheet and script, treu's readable colours for it and its start script.
    assert len(tags) == 4 and all(f'nonce="{nonce.group(1)}"' in tag for tag in tags)
    assert "<script>" not in docs.text  # no inline script
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', docs.text)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
    # Only what the page loads of the npm package is served, not its Petstore demo page.
    assert client.get("/static/vendor/swagger-ui/index.html").status_code == 404
    assert client.get("/static/vendor/swagger-ui/swagger-initializer.js").status_code == 404
    assert client.get("/redoc").status_code == 404
    # The next answer has a new nonce.
    assert nonce.group(1) not in client.get("/docs").headers["content-security-policy"]


def test_the_documented_owner_cookie_is_the_one_logging_in_sets(
    client: TestClient, shop: Shop
) -> None:
    scheme = client.get("/openapi.json").json()["components"]["securitySchemes"]["ownerSession"]
    assert client.get("/api/v1/merchant/kpis").status_code == 401
    log_in_owner(client, shop)
    assert scheme["name"] in client.cookies
    assert client.get("/api/v1/merchant/kpis").status_code == 200
