"""`treu program|tier|promotion`: the loyalty levers through the real command, their `--json`
shapes, clear refusals, and what they change for a till and a card through the API; and the
README's examples of them, run as printed (the API's with bash and curl).

Runs on SQLite and, with TREU_TEST_DATABASE_URL, on PostgreSQL.
"""

import json
import re
import shlex
import subprocess
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.clock import utcnow
from app.main import create_app
from tests.helpers.browser import LiveServer, free_port
from tests.helpers.cli import Treu, initialised
from tests.helpers.database import database_text

SLUG = "sonne"


@pytest.fixture
def treu(database_url: str, tmp_path: Path) -> Treu:
    return initialised(database_url, tmp_path)


@pytest.fixture
def shop(treu: Treu) -> dict[str, Any]:
    """A café with its first program (10 → 1 Kaffee, no cooldown) and a till's secret."""
    made: dict[str, Any] = treu.json(
        "merchant", "create", "--name", "Café Sonne", "--slug", SLUG, "--stamps-required", "10",
        "--reward", "1 Kaffee", "--cooldown-seconds", "0",
    )  # fmt: skip
    made["secret"] = treu.json("device", "create", "--merchant", SLUG)["secret"]
    return made


def till(shop: dict[str, Any], key: bool = True) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {shop['secret']}"}
    if key:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return headers


def stamp(client: TestClient, shop: dict[str, Any], token: str, **body: Any) -> Any:
    response = client.post("/api/v1/stamps", json={"token": token, **body}, headers=till(shop))
    assert response.status_code == 201, response.text
    return response.json()


def new_card(client: TestClient) -> str:
    token: str = client.post("/api/v1/cards").json()["token"]
    return token


def refused(treu: Treu, *args: str, code: int = 1) -> str:
    """Run a command that must be refused: exit code, nothing on stdout, nothing written, and
    (for exit code 1) one line on stderr; that line."""
    before = database_text(treu.database_url)
    result = treu(*args, "--json", ok=False)
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert database_text(treu.database_url) == before
    if code == 1:
        assert result.stderr.startswith("treu: ") and result.stderr.count("\n") == 1
    return result.stderr


def lunch(treu: Treu, *extra: str) -> int:
    made = treu.json(
        "program", "create", "--merchant", SLUG, "--name", "Mittagsmenü", "--stamps-required",
        "6", "--reward", "1 Dessert", "--cooldown-seconds", "0", *extra,
    )  # fmt: skip
    program_id: int = made["program_id"]
    return program_id


# --- treu program -----------------------------------------------------------------------------


def test_program_create_and_list(treu: Treu, shop: dict[str, Any]) -> None:
    made = treu.json(
        "program", "create", "--merchant", SLUG, "--name", "Mittagsmenü", "--stamps-required",
        "6", "--reward", "1 Dessert", "--level", "3=1 Espresso", "--level", "5 = 1 Kuchen",
        "--cooldown-seconds", "30", "--max-stamps-per-scan", "2", "--expire-months", "6",
    )  # fmt: skip
    assert set(made) == {"program_id"}
    listed = treu.json("program", "list", "--merchant", SLUG)
    assert [p["id"] for p in listed] == [shop["program_id"], made["program_id"]]
    first, second = listed
    assert {"id", "name", "stamps_required", "reward", "levels", "active"} <= set(second)
    assert (first["stamps_required"], first["reward"], first["levels"]) == (10, "1 Kaffee", [])
    assert (second["name"], second["stamps_required"], second["reward"]) == (
        "Mittagsmenü", 6, "1 Dessert",
    )  # fmt: skip
    assert [(lv["stamps"], lv["reward"]) for lv in second["levels"]] == [
        (3, "1 Espresso"), (5, "1 Kuchen"),
    ]  # fmt: skip
    assert all(isinstance(lv["id"], int) for lv in second["levels"])
    assert set(second["levels"][0]) == {"id", "stamps", "reward"}
    assert (second["active"], second["status"], second["expire_months"]) == (True, "running", 6)
    assert (second["cooldown_seconds"], second["max_stamps_per_scan"]) == (30, 2)

    text = treu("program", "list", "--merchant", SLUG).stdout
    assert "Mittagsmenü: 6 → 1 Dessert (also 3 → 1 Espresso, 5 → 1 Kuchen)" in text
    assert "stamps expire after 6 months away" in text
    assert "program created" in treu(
        "program", "create", "--merchant", SLUG, "--name", "Kuchen", "--stamps-required", "5",
        "--reward", "1 Stück Kuchen",
    ).stdout  # fmt: skip
    # The till offers the new program with its levels.
    with treu.api() as client:
        info = client.get("/api/v1/till", headers=till(shop, key=False)).json()
    assert [(p["id"], [lv["stamps"] for lv in p["levels"]]) for p in info["programs"]][:2] == [
        (shop["program_id"], []), (made["program_id"], [3, 5]),
    ]  # fmt: skip


def test_program_levels_are_replaced_and_redeemable_by_id(treu: Treu, shop: dict[str, Any]) -> None:
    program = str(shop["program_id"])
    set_levels = ("program", "levels", "--merchant", SLUG, "--program", program)
    first = treu.json(*set_levels, "--level", "5=1 kleiner Kaffee")["levels"]
    again = treu.json(*set_levels, "--level", "5=1 Espresso", "--level", "8=1 Cappuccino")
    # A level that keeps its stamps keeps its id (a till may be about to redeem it).
    assert again["levels"][0] == {"id": first[0]["id"], "stamps": 5, "reward": "1 Espresso"}
    small = again["levels"][0]["id"]
    with treu.api() as client:
        token = new_card(client)
        assert stamp(client, shop, token, count=6)["stamps"] == 6
        card = client.get(f"/api/v1/cards/{token}").json()["cards"][0]
        assert [(lv["stamps"], lv["available"]) for lv in card["levels"]] == [(5, True), (8, False)]
        body = {"token": token, "reward_id": small}
        redeemed = client.post("/api/v1/redemptions", json=body, headers=till(shop))
        assert redeemed.status_code == 201, redeemed.text
        assert (redeemed.json()["stamps"], redeemed.json()["reward"]) == (
            1, {"id": small, "stamps": 5, "text": "1 Espresso"},
        )  # fmt: skip
    assert treu.json(*set_levels)["levels"] == []  # no --level: the ladder goes


def test_pause_resume_archive_and_close(treu: Treu, shop: dict[str, Any]) -> None:
    program_id = lunch(treu)
    target = ("--merchant", SLUG, "--program", str(program_id))
    with treu.api() as client:
        token = new_card(client)
        assert stamp(client, shop, token, program_id=program_id, count=4)["stamps"] == 4

        paused = treu.json("program", "pause", *target)
        assert (paused["id"], paused["active"], paused["status"]) == (program_id, False, "paused")
        body = {"token": token, "program_id": program_id}
        refused_stamp = client.post("/api/v1/stamps", json=body, headers=till(shop))
        assert refused_stamp.status_code == 409

        assert treu.json("program", "resume", *target)["status"] == "running"
        assert stamp(client, shop, token, program_id=program_id, count=4)["stamps"] == 8

        assert "close" in refused(treu, "program", "close", *target).lower()  # archive first
        archived = treu.json("program", "archive", *target)
        assert (archived["active"], archived["status"]) == (False, "archived")
        assert "resumed" in refused(treu, "program", "resume", *target)
        assert client.post("/api/v1/stamps", json=body, headers=till(shop)).status_code == 409
        # Its rewards stay redeemable until it is closed.
        redeemed = client.post("/api/v1/redemptions", json=body, headers=till(shop))
        assert redeemed.status_code == 201 and redeemed.json()["stamps"] == 2

    closed = treu.json("program", "close", *target)
    assert (closed["status"], closed["cards_booked_out"]) == ("closed", 1)
    assert "booked out on 0 cards" in treu("program", "close", *target).stdout
    listed = {p["id"]: p["status"] for p in treu.json("program", "list", "--merchant", SLUG)}
    assert listed == {shop["program_id"]: "running", program_id: "closed"}
    with treu.api() as client:
        cards = client.get(f"/api/v1/cards/{token}").json()["cards"]
        assert all(c["program"]["id"] != program_id or c["stamps"] == 0 for c in cards)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--level", "10=1 Kuchen"), "fewer stamps than the main reward (1 to 9)"),
        (("--level", "five=1 Kuchen"), "STAMPS=REWARD"),
        (("--level", "3=1 Kuchen", "--level", "3=1 Torte"), "Two reward levels at 3"),
        (("--level", "3="), "needs a text"),
        (("--name", " "), "needs a text"),
        (("--merchant", "nowhere"), "nowhere"),
    ],
)
def test_bad_program_input_is_one_clear_line(
    treu: Treu, shop: dict[str, Any], args: tuple[str, ...], message: str
) -> None:
    base = {"--merchant": SLUG, "--name": "Kuchen", "--stamps-required": "10",
            "--reward": "1 Stück Kuchen"}  # fmt: skip
    flags = [part for pair in base.items() if pair[0] not in args for part in pair]
    assert message in refused(treu, "program", "create", *flags, *args)


def test_malformed_program_options_are_usage_errors(treu: Treu, shop: dict[str, Any]) -> None:
    base = ("program", "create", "--merchant", SLUG, "--name", "K", "--reward", "1 K")
    assert "--expire-months" in refused(
        treu, *base, "--stamps-required", "5", "--expire-months", "61", code=2
    )
    assert "--stamps-required" in refused(treu, *base, "--stamps-required", "0", code=2)


def test_another_merchants_program_is_not_found(treu: Treu, shop: dict[str, Any]) -> None:
    treu("merchant", "create", "--name", "Bäckerei", "--slug", "gruber", "--stamps-required",
         "8", "--reward", "1 Brot")  # fmt: skip
    for action in ("pause", "archive", "levels"):
        message = refused(
            treu, "program", action, "--merchant", "gruber", "--program", str(shop["program_id"])
        )
        assert f"No program {shop['program_id']} at gruber" in message


# --- treu tier --------------------------------------------------------------------------------


def test_tiers_create_list_lapse_and_delete(treu: Treu, shop: dict[str, Any]) -> None:
    made = treu.json(
        "tier", "create", "--merchant", SLUG, "--name", "Stammgast", "--lifetime-stamps", "3",
        "--bonus-per-visit", "1", "--perk", "10 % auf Kuchen",
    )  # fmt: skip
    assert set(made) == {"tier_id"}
    treu("tier", "create", "--merchant", SLUG, "--name", "Ehrengast", "--lifetime-stamps", "50")
    listed = treu.json("tier", "list", "--merchant", SLUG)
    assert listed["lapse_months"] == 0
    listed = listed["tiers"]
    assert listed[0] == {
        "id": made["tier_id"], "name": "Stammgast", "lifetime_stamps": 3, "bonus_per_visit": 1,
        "perk": "10 % auf Kuchen",
    }  # fmt: skip
    assert [t["name"] for t in listed] == ["Stammgast", "Ehrengast"]
    assert "exists already" in refused(
        treu, "tier", "create", "--merchant", SLUG, "--name", "X", "--lifetime-stamps", "3"
    )
    assert "status never lapses" in treu("tier", "list", "--merchant", SLUG).stdout
    assert treu.json("tier", "lapse", "--merchant", SLUG, "--months", "6") == {"lapse_months": 6}
    assert treu.json("tier", "list", "--merchant", SLUG)["lapse_months"] == 6
    text = treu("tier", "list", "--merchant", SLUG).stdout
    assert "Stammgast from 3 stamps (+1 per visit; 10 % auf Kuchen)" in text
    assert "status lapses after 6 months without a visit" in text
    refused(treu, "tier", "lapse", "--merchant", SLUG, "--months", "61", code=2)

    # The perk: from the visit after the third stamp, +1 per visit, and the card page says so.
    with treu.api() as client:
        token = new_card(client)
        assert stamp(client, shop, token, count=3)["bonus"] == []
        second = stamp(client, shop, token)
        assert second["bonus"] == [{"promotion_id": None, "title": "Stammgast", "stamps": 1}]
        assert second["stamps"] == 5
        card = client.get(f"/api/v1/cards/{token}").json()["cards"][0]
        assert card["tier"] == {"name": "Stammgast", "perk": "10 % auf Kuchen"}
        assert card["next_tier"] == {"name": "Ehrengast", "lifetime_stamps_needed": 45}

    treu.json("tier", "delete", "--merchant", SLUG, "--tier", str(made["tier_id"]))
    remaining = treu.json("tier", "list", "--merchant", SLUG)["tiers"]
    assert [t["name"] for t in remaining] == ["Ehrengast"]
    assert "No tier" in refused(treu, "tier", "delete", "--merchant", SLUG, "--tier", "999")


# --- treu promotion ---------------------------------------------------------------------------


def test_promotions_create_list_and_end(treu: Treu, shop: dict[str, Any]) -> None:
    happy = treu.json(
        "promotion", "create", "--merchant", SLUG, "--kind", "multiplier", "--title",
        "Happy Hour", "--days", "tue,wed,thu", "--from", "14:00", "--to", "16:00", "--factor",
        "3", "--starts", "2030-01-01", "--ends", "2030-03-31", "--budget", "500",
        "--holdout-percent", "10",
    )  # fmt: skip
    assert set(happy) == {"promotion_id"}
    program_id = lunch(treu)
    welcome = treu.json(
        "promotion", "create", "--merchant", SLUG, "--kind", "welcome", "--stamps", "2",
        "--program", str(program_id),
    )  # fmt: skip
    listed = treu.json("promotion", "list", "--merchant", SLUG)
    # Running ones first; the merchant's JSON API shows them the same way.
    assert [p["id"] for p in listed] == [welcome["promotion_id"], happy["promotion_id"]]
    assert listed[0] == {
        "id": welcome["promotion_id"], "kind": "welcome",
        "title": "Willkommen",  # by its kind, in the shop's language: its customers read it
        "program_id": program_id, "factor": None, "stamps": 2, "days": None, "from": None,
        "to": None, "away_days": None, "starts": None, "ends": None, "budget": 0, "spent": 0,
        "holdout_percent": 0, "status": "running", "ended_at": None,
        "summary": "+2 stamps on the first visit of a card, only in “Mittagsmenü”",
    }  # fmt: skip
    assert {k: listed[1][k] for k in ("days", "from", "to", "factor", "stamps", "starts")} == {
        "days": ["tue", "wed", "thu"], "from": "14:00", "to": "16:00", "factor": 3,
        "stamps": None, "starts": "2030-01-01",
    }  # fmt: skip
    assert (listed[1]["budget"], listed[1]["holdout_percent"], listed[1]["status"]) == (
        500, 10, "scheduled",
    )  # fmt: skip
    text = treu("promotion", "list", "--merchant", SLUG).stdout
    assert (
        "Happy Hour: Tuesdays to Thursdays 14\u201316 h, every stamp counts triple, from 1 January "
        "2030 to 31 March 2030, at most 500 extra stamps, 10% of cards get no bonus"
    ) in text
    assert "\tscheduled" in text

    ended = treu.json(
        "promotion", "end", "--merchant", SLUG, "--promotion", str(happy["promotion_id"])
    )
    assert ended["status"] == "ended" and ended["ended_at"]
    after = treu.json("promotion", "list", "--merchant", SLUG)
    assert [p["status"] for p in after] == ["running", "ended"]
    assert "No promotion 999" in refused(
        treu, "promotion", "end", "--merchant", SLUG, "--promotion", "999"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--kind", "multiplier", "--from", "25:00", "--to", "26:00"), "not a time of day"),
        (("--kind", "multiplier", "--from", "14h", "--to", "16:00"), "HH:MM"),
        (("--kind", "multiplier", "--from", "16:00", "--to", "14:00"), "end after it starts"),
        (("--kind", "multiplier", "--from", "14:00"), "both its start and its end"),
        (("--kind", "multiplier", "--days", "tue,someday"), "unknown weekday 'someday'"),
        (("--kind", "multiplier", "--days", ","), "at least one weekday"),
        (("--kind", "welcome", "--factor", "3"), "factor is for a multiplier promotion"),
        (("--kind", "campaign", "--days", "mon"), "days is for a multiplier promotion"),
        (("--kind", "campaign", "--from", "9:00", "--to", "10:00"), "from is for a multiplier"),
        (("--kind", "multiplier", "--stamps", "2"), "stamps is for a welcome or winback"),
        (("--kind", "welcome", "--away-days", "30"), "away_days is for a winback promotion"),
        (("--kind", "winback"), "days away"),
        (("--kind", "campaign", "--starts", "2030-02-01", "--ends", "2030-01-01"), "on or after"),
        (("--kind", "campaign", "--program", "999"), "No program 999"),
        (("--kind", "campaign", "--title", "x" * 81), "at most 80 characters"),
    ],
)
def test_bad_promotion_input_is_one_clear_line(
    treu: Treu, shop: dict[str, Any], args: tuple[str, ...], message: str
) -> None:
    assert message in refused(treu, "promotion", "create", "--merchant", SLUG, *args)


def test_malformed_promotion_options_are_usage_errors(treu: Treu, shop: dict[str, Any]) -> None:
    create = ("promotion", "create", "--merchant", SLUG)
    assert "--kind" in refused(treu, *create, "--kind", "birthday", code=2)
    assert "--factor" in refused(treu, *create, "--kind", "multiplier", "--factor", "9", code=2)
    assert "--starts" in refused(treu, *create, "--kind", "campaign", "--starts", "1.2.", code=2)
    assert "--holdout-percent" in refused(
        treu, *create, "--kind", "campaign", "--holdout-percent", "51", code=2
    )


def test_a_promotion_made_by_the_cli_gives_its_bonus_at_the_till(
    treu: Treu, shop: dict[str, Any]
) -> None:
    """Made by the CLI, applied by the server at stamp time, listed in the stamp's answer, and
    stopped by the CLI while the server runs."""
    double = treu.json(
        "promotion", "create", "--merchant", SLUG, "--kind", "multiplier", "--factor", "3",
        "--title", "Triple",
    )["promotion_id"]  # fmt: skip
    welcome = treu.json(
        "promotion", "create", "--merchant", SLUG, "--kind", "welcome", "--stamps", "2"
    )["promotion_id"]
    with treu.api() as client:
        token = new_card(client)
        first = stamp(client, shop, token, count=2)
        assert first["bonus"] == [
            {"promotion_id": double, "title": "Triple", "stamps": 4},
            {"promotion_id": welcome, "title": "Willkommen", "stamps": 2},
        ]
        assert first["stamps"] == 2 + 4 + 2
        second = stamp(client, shop, token)
        assert second["bonus"] == [{"promotion_id": double, "title": "Triple", "stamps": 2}]
        assert second["stamps"] == 11

        treu("promotion", "end", "--merchant", SLUG, "--promotion", str(double))
        third = stamp(client, shop, token)
        assert (third["bonus"], third["stamps"]) == ([], 12)
        card = client.get(f"/api/v1/cards/{token}").json()["cards"][0]
        assert card["stamps"] == 12


def test_a_promotion_for_one_program_leaves_the_others_alone(
    treu: Treu, shop: dict[str, Any]
) -> None:
    program_id = lunch(treu)
    treu(
        "promotion", "create", "--merchant", SLUG, "--kind", "campaign", "--program",
        str(program_id), "--title", "Mittagsbonus", "--budget", "1",
    )  # fmt: skip
    with treu.api() as client:
        token = new_card(client)
        assert stamp(client, shop, token)["bonus"] == []  # the coffee card
        lunch_stamp = stamp(client, shop, token, program_id=program_id)
        assert [b["title"] for b in lunch_stamp["bonus"]] == ["Mittagsbonus"]
        # Its budget of one bonus stamp is spent.
        assert stamp(client, shop, token, program_id=program_id)["bonus"] == []
    (listed,) = treu.json("promotion", "list", "--merchant", SLUG)
    assert (listed["spent"], listed["status"]) == (1, "spent")


# --- the README's examples --------------------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_blocks(section: str) -> list[str]:
    """The shell blocks of a README section."""
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start:end], re.S)


def documented_commands(block: str) -> list[tuple[list[str], Any]]:
    """Each `treu` command of a block, with the `--json` answer documented on the line after it
    (`# {...}`), or None."""
    lines = block.replace("\\\n", " ").splitlines()
    found = []
    for line, after in zip(lines, [*lines[1:], ""], strict=True):
        if line.startswith("treu "):
            answer = json.loads(after[1:]) if after.startswith("# {") else None
            found.append((shlex.split(line, comments=True)[1:], answer))
    return found


def next_monday_morning() -> datetime:
    """09:00 in Vienna on a Monday to come: no happy hour at the demo café."""
    day = utcnow().date() + timedelta(days=1)
    day += timedelta(days=-day.weekday() % 7)
    return datetime.combine(day, time(8, 0), tzinfo=UTC)


def test_the_readme_loyalty_examples_work_as_shown(treu: Treu) -> None:
    demo = treu.json("demo", "--cards", "30", "--months", "2", "--visits", "300")
    cli_block, api_block = readme_blocks("Loyalty mechanics")
    commands = documented_commands(cli_block)
    assert len(commands) >= 10 and sum(answer is not None for _, answer in commands) == 4
    for args, answer in commands:
        out = treu(*args).stdout
        if answer is not None:
            assert json.loads(out) == answer, args

    # The API examples, run by bash and curl as printed, against a server on the demo data.
    cafe = demo["merchants"][0]
    moment = next_monday_morning()
    app = create_app(treu.settings(), clock=lambda: moment)
    server = LiveServer(app, free_port())
    server.start()
    try:
        script = api_block.replace("SECRET=treu_dev_...", f"SECRET={cafe['device_secret']}")
        assert "http://127.0.0.1:8000" in script
        script = script.replace("http://127.0.0.1:8000", server.url)
        done = subprocess.run(
            ["bash", "-eu", "-o", "pipefail", "-c", script], capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
    finally:
        server.stop()
        app.state.writer.stop()
        app.state.engine.dispose()
    assert done.returncode == 0, done.stderr
    info, stamped, redeemed, view = (json.loads(line) for line in done.stdout.splitlines())

    coffee = info["programs"][0]
    assert (coffee["id"], coffee["name"]) == (1, "Kaffee")
    assert coffee["levels"] == [{"id": 1, "stamps": 5, "reward": "1 kleiner Kaffee"}]
    assert {k: stamped[k] for k in ("kind", "delta", "stamps", "rewards_available")} == {
        "kind": "stamp", "delta": 4, "stamps": 5, "rewards_available": 0,
    }  # fmt: skip
    assert (stamped["program"]["id"], stamped["program"]["name"]) == (1, "Kaffee")
    welcome = [{"promotion_id": 2, "title": "Willkommen", "stamps": 1}]
    assert stamped["bonus"] == welcome
    assert {k: redeemed[k] for k in ("kind", "delta", "stamps", "reward")} == {
        "kind": "redemption", "delta": -5, "stamps": 0,
        "reward": {"id": 1, "stamps": 5, "text": "1 kleiner Kaffee"},
    }  # fmt: skip
    (card,) = view["cards"]
    assert (card["merchant"]["slug"], card["program"]["id"], card["stamps"]) == (
        "cafe-sonne", 1, 0,
    )  # fmt: skip
    shown = ("levels", "tier", "next_tier", "expires_on", "ended", "bonus")
    assert {k: card[k] for k in shown} == {
        "levels": [{"id": 1, "stamps": 5, "reward": "1 kleiner Kaffee", "available": False}],
        "tier": None, "next_tier": {"name": "Stammgast", "lifetime_stamps_needed": 25},
        "expires_on": None, "ended": False, "bonus": welcome,
    }  # fmt: skip
