"""Every string of every page has its German translation; the language is chosen sensibly."""

from pathlib import Path

from babel.messages.extract import extract_from_dir
from fastapi.testclient import TestClient

from app.web import i18n

ROOT = Path(__file__).resolve().parents[2]
METHODS = [("app/**/templates/**.html", "jinja2"), ("app/**.py", "python")]
OPTIONS = {"app/**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def test_every_page_string_has_a_german_translation() -> None:
    german = i18n.translations("de")
    found = list(extract_from_dir(ROOT, METHODS, OPTIONS))
    messages = set()
    for filename, _line, message, _comments, _context in found:
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            messages.add((filename, msgid))
    assert messages, "no translatable strings found: is the extraction broken?"
    # Words German writes the same: "Feedback" (the customer's and the owner's pages both use
    # it) and "Logo".
    same = {"Feedback", "Feedbacks", "Logo"}
    missing = sorted(
        f"{f}: {m!r}" for f, m in messages if german.ugettext(m) == m and m not in same
    )
    assert not missing, "untranslated:\n" + "\n".join(missing)


def test_language_from_header_switch_and_cookie(client: TestClient) -> None:
    html = {"Accept": "text/html"}
    german = client.get("/no-such-page", headers={**html, "Accept-Language": "de-AT,de;q=0.9"})
    assert german.status_code == 404
    assert '<html lang="de-AT">' in german.text  # the region is kept, for dates and times
    assert "Unter dieser Adresse gibt es nichts." in german.text
    english = client.get("/no-such-page", headers={**html, "Accept-Language": "fr-FR, en;q=0.5"})
    assert '<html lang="en">' in english.text
    switched = client.get("/no-such-page?lang=de", headers={**html, "Accept-Language": "en"})
    assert '<html lang="de">' in switched.text
    assert switched.cookies.get("lang") == "de"
    remembered = client.get("/no-such-page", headers={**html, "Accept-Language": "en"})
    assert '<html lang="de">' in remembered.text


def test_api_errors_stay_problem_json_and_pages_get_headers(client: TestClient) -> None:
    api = client.get("/api/v1/nothing", headers={"Accept": "text/html"})
    assert api.headers["content-type"] == "application/problem+json"
    assert "content-security-policy" not in api.headers
    page = client.get("/no-such-page", headers={"Accept": "text/html"})
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"


def test_favicon_is_served(client: TestClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
