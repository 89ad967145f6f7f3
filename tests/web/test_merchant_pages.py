"""The merchant area's pages as an owner uses them: program rules, shop profile, devices,
CSV exports and printables (HTTP level; the browser story is in test_merchant_browser.py)."""

import csv
import io
import re
import uuid
from datetime import date
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from app.analytics.service import today_of
from app.ledger import service as ledger
from app.ledger.models import Balance, LedgerEntry
from app.merchants import service
from app.merchants.models import Device, Merchant, Program
from app.tokens import crypto
from app.tokens.models import Card
from tests.helpers.api import new_card, redeem, stamp
from tests.helpers.clock import Clock
from tests.helpers.pages import HTML, form_token, log_in
from tests.helpers.shops import Shop


def owner_client(client: TestClient, shop: Shop) -> str:
    """Log the shop's owner in; returns a CSRF token for its forms."""
    log_in(client, shop.owner_email, shop.owner_password)
    return form_token(client.get("/merchant/account", headers=HTML).text)


def save_program(client: TestClient, shop: Shop, token: str, **changes: Any) -> Any:
    rules = {
        "name": "Coffee card", "reward_text": "1 free coffee", "stamps_required": "10",
        "max_stamps_per_scan": "10", "cooldown_seconds": "0", "daily_cap": "0",
    }  # fmt: skip
    rules.update({k: str(v) for k, v in changes.items()})
    return client.post(
        f"/merchant/program/{shop.program_id}", data={"csrf_token": token, **rules},
        headers=HTML, follow_redirects=False,
    )  # fmt: skip


def card_view(client: TestClient, token: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/cards/{token}")
    assert response.status_code == 200
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards[0]


def balances(app: FastAPI, shop: Shop) -> dict[str, int]:
    with Session(app.state.engine) as session:
        rows = session.exec(select(Balance).where(Balance.merchant_id == shop.merchant_id)).all()
        return {b.holder: b.stamps for b in rows}


def ledger_sums(app: FastAPI, shop: Shop) -> dict[str, int]:
    with Session(app.state.engine) as session:
        query = (
            select(LedgerEntry.holder, func.sum(LedgerEntry.delta))
            .where(LedgerEntry.merchant_id == shop.merchant_id)
            .group_by(LedgerEntry.holder)  # type: ignore[arg-type]
        )
        return {holder: int(total) for holder, total in session.exec(query).all()}


# --- program ----------------------------------------------------------------------------------


def test_lowering_the_goal_makes_rewards_due_sooner(client: TestClient, shop: Shop) -> None:
    token = owner_client(client, shop)
    assert save_program(client, shop, token).status_code == 303  # cooldown 0 for the test
    card = new_card(client)
    assert stamp(client, shop, card, count=9).status_code == 201
    assert card_view(client, card)["rewards_available"] == 0
    response = save_program(client, shop, token, stamps_required=8)
    assert response.status_code == 303
    assert card_view(client, card)["stamps"] == 9
    assert card_view(client, card)["rewards_available"] == 1
    assert redeem(client, shop, card).status_code == 201
    assert card_view(client, card)["stamps"] == 1


def test_raising_the_goal_keeps_progress_and_due_rewards(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    token = owner_client(client, shop)
    save_program(client, shop, token)
    half, full, beyond, fresh = (new_card(client) for _ in range(4))
    for card, n in ((half, 5), (full, 10), (beyond, 10)):
        assert stamp(client, shop, card, count=n).status_code == 201
    assert stamp(client, shop, beyond, count=5).status_code == 201
    assert stamp(client, shop, fresh, count=1).status_code == 201
    assert redeem(client, shop, fresh).status_code == 409  # not due: 1 of 10
    response = save_program(client, shop, token, stamps_required=12)
    assert response.status_code == 303
    page = client.get(response.headers["location"], headers=HTML).text
    assert "4 cards had their stamps scaled up to the new goal" in page
    assert card_view(client, half)["stamps"] == 6  # 5 of 10 → 6 of 12
    assert (card_view(client, full)["stamps"], card_view(client, full)["rewards_available"]) == (
        12,
        1,
    )
    assert card_view(client, beyond)["stamps"] == 18  # 1 reward due + 6 of 12
    assert card_view(client, fresh)["stamps"] == 2  # rounded in the card's favour
    # The ledger still adds up to every balance: one adjustment entry per scaled card.
    assert ledger_sums(app, shop) == balances(app, shop)
    with Session(app.state.engine) as session:
        kinds = session.exec(select(LedgerEntry.kind).where(LedgerEntry.kind == "adjustment")).all()
    assert len(kinds) == 4
    assert redeem(client, shop, full).status_code == 201


def test_the_page_says_what_a_change_means(client: TestClient, shop: Shop) -> None:
    owner_client(client, shop)
    page = client.get("/merchant/program", headers=HTML).text
    # The forms start filled with the current rules and profile.
    for value in ("1 free coffee", "10", "60", "Café Sonne"):
        assert f'value="{value}"' in page, value
    assert "Nobody loses stamps." in page
    assert "5 of 10 become 6 of 12" in page
    german = client.get("/merchant/program?lang=de", headers=HTML).text
    assert "Niemand verliert Stempel." in german


def test_scaled_stamps_never_lose_progress() -> None:
    for old in range(1, 21):
        for new in range(1, 31):
            for stamps in range(0, 45):
                scaled = ledger.scaled_stamps(stamps, old, new)
                assert scaled >= stamps
                if new > old:
                    assert scaled * old >= stamps * new  # the same share, or more
                    assert scaled // new >= stamps // old  # due rewards stay due
                    assert (scaled - 1) * old < stamps * new or scaled == stamps


def test_bad_rules_are_refused_with_the_form_kept(client: TestClient, shop: Shop) -> None:
    token = owner_client(client, shop)
    response = save_program(client, shop, token, stamps_required=0, reward_text="  ")
    assert response.status_code == 422
    assert "Enter a whole number from 1 to 100." in response.text
    assert "Say what the reward is." in response.text
    assert 'aria-invalid="true"' in response.text
    response = save_program(client, shop, token, cooldown_seconds="ten")
    assert response.status_code == 422


def test_pause_stops_stamps_but_not_redemptions(client: TestClient, shop: Shop) -> None:
    token = owner_client(client, shop)
    save_program(client, shop, token)  # no cooldown
    card = new_card(client)
    assert stamp(client, shop, card, count=10).status_code == 201
    response = client.post(
        f"/merchant/program/{shop.program_id}/pause", data={"csrf_token": token},
        headers=HTML, follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303
    page = client.get(response.headers["location"], headers=HTML).text
    assert "Paused" in page and "Resume the program" in page
    refused = stamp(client, shop, card)
    assert refused.status_code == 409 and refused.json()["code"] == "program-paused"
    assert redeem(client, shop, card).status_code == 201
    client.post(f"/merchant/program/{shop.program_id}/resume", data={"csrf_token": token})
    assert stamp(client, shop, card).status_code == 201


def test_new_reward_text_shows_on_the_card(client: TestClient, shop: Shop) -> None:
    token = owner_client(client, shop)
    card = new_card(client)
    stamp(client, shop, card)
    save_program(client, shop, token, reward_text="1 cappuccino")
    assert card_view(client, card)["program"]["reward"] == "1 cappuccino"


# --- profile ----------------------------------------------------------------------------------


def post_profile(client: TestClient, token: str, **fields: str) -> Any:
    data = {"shop_name": "Café Sonne", "city": "Graz", "category": "Café", "review_link": "",
            "locale": "de", **fields}  # fmt: skip
    return client.post(
        "/merchant/profile", data={"csrf_token": token, **data}, headers=HTML,
        follow_redirects=False,
    )  # fmt: skip


def test_profile_builds_the_google_review_link_from_a_place_id(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    token = owner_client(client, shop)
    response = post_profile(client, token, review_link=" ChIJN1t_tDeuEmsRUsoyG83frY4 ")
    assert response.status_code == 303
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        assert merchant.review_url == (
            "https://search.google.com/local/writereview?placeid=ChIJN1t_tDeuEmsRUsoyG83frY4"
        )
        assert (merchant.city, merchant.locale) == ("Graz", "de")
    page = client.get("/merchant/program", headers=HTML).text
    assert 'href="https://search.google.com/local/writereview?placeid=ChIJN1t' in page
    assert post_profile(client, token, review_link="https://g.page/r/abc/review").status_code == 303


def test_profile_refuses_bad_links_and_empty_names(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    token = owner_client(client, shop)
    for link in ("http://example.org/review", "javascript:alert(1)", "not a link"):
        response = post_profile(client, token, review_link=link)
        assert response.status_code == 422, link
        assert "Google Place ID" in response.text
    assert post_profile(client, token, shop_name="  ").status_code == 422
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None and merchant.name == "Café Sonne" and not merchant.review_url


# --- devices ----------------------------------------------------------------------------------


def test_pair_rename_and_revoke_a_device(app: FastAPI, client: TestClient, shop: Shop) -> None:
    token = owner_client(client, shop)
    page = client.post(
        "/merchant/devices/pair", data={"csrf_token": token, "label": "Counter tablet"},
        headers=HTML,
    )  # fmt: skip
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "<svg" in page.text and "<?xml" not in page.text
    url = re.search(r'href="(http[^"]+/till/pair/([A-Z2-7]+))"', page.text)
    assert url, "no pairing link on the page"
    # The till redeems the code (the till's own API), and the device appears in the list.
    from app.merchants.pairing import redeem_pairing_code

    with Session(app.state.engine) as session:
        paired = redeem_pairing_code(session=session, code=url.group(2), now=app.state.clock())
        session.commit()
        device_id, secret = paired.device.id, paired.secret
    devices = client.get("/merchant/devices", headers=HTML).text
    assert "Counter tablet" in devices and "Not used yet" in devices
    card = new_card(client)
    auth = {"Authorization": f"Bearer {secret}", "Idempotency-Key": uuid.uuid4().hex}
    assert client.post("/api/v1/stamps", json={"token": card}, headers=auth).status_code == 201
    assert "Last used" in client.get("/merchant/devices", headers=HTML).text

    renamed = client.post(
        f"/merchant/devices/{device_id}/rename", data={"csrf_token": token, "label": "Bar"},
        headers=HTML, follow_redirects=False,
    )  # fmt: skip
    assert renamed.status_code == 303
    assert "Bar" in client.get("/merchant/devices", headers=HTML).text
    empty = client.post(
        f"/merchant/devices/{device_id}/rename", data={"csrf_token": token, "label": " "},
        headers=HTML,
    )  # fmt: skip
    assert empty.status_code == 422 and "A device needs a name." in empty.text

    revoked = client.post(
        f"/merchant/devices/{device_id}/revoke", data={"csrf_token": token},
        headers=HTML, follow_redirects=False,
    )  # fmt: skip
    assert revoked.status_code == 303
    auth["Idempotency-Key"] = uuid.uuid4().hex
    refused = client.post("/api/v1/stamps", json={"token": new_card(client)}, headers=auth)
    assert refused.status_code == 401 and refused.json()["code"] == "device-revoked"
    with Session(app.state.engine) as session:
        device = session.get(Device, device_id)
        assert device is not None and device.revoked_at is not None and device.label == "Bar"


# --- exports ----------------------------------------------------------------------------------


def shop_today(app: FastAPI, shop: Shop, clock: Clock) -> date:
    """The shop's local date now: what the exports' days are (not the UTC date)."""
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        return today_of(merchant, clock())


def daily(client: TestClient, query: str = "") -> list[dict[str, str]]:
    response = client.get(f"/merchant/exports/daily.csv{query}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    return list(csv.DictReader(io.StringIO(response.text)))


def test_daily_csv_holds_counts_only_never_a_card_or_a_pseudonym(
    app: FastAPI, client: TestClient, shop: Shop, clock: Clock
) -> None:
    token = owner_client(client, shop)
    save_program(client, shop, token, stamps_required=2)
    card = new_card(client)
    assert stamp(client, shop, card, count=2).status_code == 201
    clock.advance(1)
    assert redeem(client, shop, card).status_code == 201
    text = client.get("/merchant/exports/daily.csv").text
    card_id = crypto.verify_token(app.state.keyring, card)
    with Session(app.state.engine) as session:
        entries = session.exec(select(LedgerEntry.id)).all()
    for secret in (
        card, card_id.hex(), crypto.b32encode(card_id), crypto.card_ref(app.state.keyring, card_id),
        crypto.recovery_code(card_id), crypto.recovery_code(card_id).replace("-", ""),
        crypto.holder_for(app.state.keyring, card_id, shop.merchant_id), *entries,
    ):  # fmt: skip
        assert secret.lower() not in text.lower()
    # There is no row-level export: every row of it would be about one card.
    assert client.get("/merchant/exports/ledger.csv", headers=HTML).status_code == 404
    page = client.get("/merchant/exports", headers=HTML).text
    assert "ledger.csv" not in page and "/merchant/exports/daily.csv" in page
    assert "reads “&lt;10”" in page  # the page says how small figures read


def test_daily_csv_by_period(app: FastAPI, client: TestClient, shop: Shop, clock: Clock) -> None:
    owner_client(client, shop)
    assert stamp(client, shop, new_card(client)).status_code == 201
    today = shop_today(app, shop, clock)
    assert [r["day"] for r in daily(client, f"?start={today}&end={today}")] == [str(today)]
    assert daily(client, "?start=2001-01-01&end=2001-01-02") == []
    assert [r["day"] for r in daily(client)] == [str(today)]  # up to the shop's today
    bad = client.get("/merchant/exports/daily.csv?start=2026-02-30", headers=HTML)
    assert bad.status_code == 422 and "Choose two dates" in bad.text
    reversed_ = client.get(
        "/merchant/exports/daily.csv?start=2026-02-02&end=2026-02-01", headers=HTML
    )
    assert reversed_.status_code == 422


def test_daily_csv(app: FastAPI, client: TestClient, shop: Shop, clock: Clock) -> None:
    owner_client(client, shop)
    for _ in range(12):
        assert stamp(client, shop, new_card(client)).status_code == 201
    today = shop_today(app, shop, clock)
    rows = daily(client, f"?start={today}&end={today}")
    assert len(rows) == 1
    assert rows[0]["day"] == str(today)
    assert rows[0]["visits"] == "12" and rows[0]["new_cards"] == "12"
    # Counted, not about k cards: like the dashboard, a count of fewer than 10 is hidden.
    assert rows[0]["redemptions"] == "0" and rows[0]["rewards_earned"] == "0"


def test_csv_quotes_every_cell(app: FastAPI, client: TestClient, shop: Shop, clock: Clock) -> None:
    """A spreadsheet that splits on `;` or tabs (German Excel) keeps every cell whole."""
    owner_client(client, shop)
    assert stamp(client, shop, new_card(client)).status_code == 201
    lines = client.get("/merchant/exports/daily.csv").text.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert re.fullmatch(r'"[^"]*"(,"[^"]*")*', line), line


# --- printables -------------------------------------------------------------------------------


def test_poster_points_at_the_merchant_page(client: TestClient, shop: Shop, app: FastAPI) -> None:
    owner_client(client, shop)
    for size in ("a4", "a5"):
        page = client.get(f"/merchant/print/poster?size={size}", headers=HTML)
        assert page.status_code == 200
        assert f'class="sheet-preview poster {size}"' in page.text
        assert f"{app.state.settings.base_url}/m/{shop.slug}" in page.text
        assert "Collect 10 stamps, get 1 free coffee" in page.text
        assert page.text.count("<svg") == 1


def test_card_sheet_makes_working_cards(app: FastAPI, client: TestClient, shop: Shop) -> None:
    token = owner_client(client, shop)
    with Session(app.state.engine) as session:
        before = len(session.exec(select(Card)).all())
    page = client.post(
        "/merchant/print/cards", data={"csrf_token": token, "count": "20"}, headers=HTML
    )
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert page.text.count('class="card-sheet"') == 2
    codes = re.findall(r'class="code">([A-Z2-7-]+)<', page.text)
    assert len(codes) == 20 == len(set(codes))
    with Session(app.state.engine) as session:
        assert len(session.exec(select(Card)).all()) == before + 20
    restored = client.post("/api/v1/cards/restore", json={"recovery_code": codes[7]})
    assert restored.status_code == 200
    assert stamp(client, shop, restored.json()["token"]).status_code == 201
    # Anything but the offered counts falls back to one sheet.
    odd = client.post("/merchant/print/cards", data={"csrf_token": token, "count": "100000"})
    assert odd.text.count('class="print-card"') == 10


def test_cards_print_cli_still_works(app: FastAPI, shop: Shop) -> None:
    from app.web.printing import card_sheet

    with Session(app.state.engine) as session:
        html = card_sheet(session=session, settings=app.state.settings, slug=shop.slug, count=11)
        session.commit()
    assert html.count('class="print-card"') == 11
    assert html.count('class="card-sheet"') == 2
    assert "<style>" in html and "@page card-sheet" in html
    assert "Café Sonne" in html


def test_program_ids_are_per_merchant(app: FastAPI, shop: Shop, other_shop: Shop) -> None:
    with Session(app.state.engine) as session:
        mine = session.get(Merchant, shop.merchant_id)
        assert mine is not None
        assert [p.id for p in service.list_programs(session=session, merchant=mine)] == [
            shop.program_id
        ]
        assert session.get(Program, other_shop.program_id) is not None
