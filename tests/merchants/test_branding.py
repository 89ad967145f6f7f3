"""Each shop looks like itself: the owner's logo (re-encoded by treu, served as PNG) and accent
colour (WCAG AA or refused), on the shop's page and in the card view (HTTP level; the browser
story is in tests/web/test_branding_browser.py)."""

import io
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session

from app.merchants.models import Merchant, MerchantLogo
from app.web.printing import card_sheet
from tests.helpers.api import new_card, stamp
from tests.helpers.pages import HTML, form_token, log_in
from tests.helpers.shops import Shop

ENGLISH = {**HTML, "Accept-Language": "en"}


def owner_token(client: TestClient, shop: Shop) -> str:
    log_in(client, shop.owner_email, shop.owner_password)
    return form_token(client.get("/merchant/account", headers=ENGLISH).text)


def image_bytes(kind: str, size: tuple[int, int] = (800, 400), **save: Any) -> bytes:
    out = io.BytesIO()
    mode = "1" if kind == "PNG" and size[0] * size[1] > 10_000_000 else "RGB"
    Image.new(mode, size, 1 if mode == "1" else (200, 30, 30)).save(out, kind, **save)
    return out.getvalue()


def upload(client: TestClient, token: str, name: str, data: bytes, kind: str) -> Any:
    return client.post(
        "/merchant/account/logo", data={"csrf_token": token},
        files={"logo": (name, data, kind)}, headers=ENGLISH, follow_redirects=False,
    )  # fmt: skip


def accent(client: TestClient, token: str, color: str) -> Any:
    return client.post(
        "/merchant/account/accent", data={"csrf_token": token, "accent": color},
        headers=ENGLISH, follow_redirects=False,
    )  # fmt: skip


def stored(app: FastAPI, shop: Shop) -> tuple[Merchant, MerchantLogo | None]:
    with Session(app.state.engine) as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        return merchant, session.get(MerchantLogo, shop.merchant_id)


def served_logo(client: TestClient, shop: Shop) -> Image.Image:
    page = client.get(f"/m/{shop.slug}", headers=ENGLISH).text
    version = next(part for part in page.split('"') if part.startswith(f"/m/{shop.slug}/logo"))
    response = client.get(version)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in response.headers["cache-control"]
    return Image.open(io.BytesIO(response.content))


def test_a_png_and_a_jpeg_are_served_back_as_clean_small_pngs(
    client: TestClient, shop: Shop
) -> None:
    token = owner_token(client, shop)
    assert client.get(f"/m/{shop.slug}/logo.png").status_code == 404
    tagged = image_bytes("PNG", (1200, 600), pnginfo=_text_chunk("Author", "Somebody"))
    assert upload(client, token, "logo.png", tagged, "image/png").status_code == 303
    logo = served_logo(client, shop)
    assert logo.format == "PNG" and max(logo.size) == 512 and logo.size == (512, 256)
    assert "Author" not in logo.info and not logo.getexif()

    exif = Image.Exif()
    exif[0x010F] = "Camera maker"  # Make
    photo = image_bytes("JPEG", (300, 300), exif=exif.tobytes())
    assert upload(client, token, "photo.jpg", photo, "image/jpeg").status_code == 303
    logo = served_logo(client, shop)
    assert logo.format == "PNG" and logo.size == (300, 300)
    assert not logo.getexif() and "exif" not in logo.info

    page = client.get("/merchant/account?done=logo", headers=ENGLISH).text
    assert "Your logo was saved." in page
    assert client.post(
        "/merchant/account/logo/remove", data={"csrf_token": token}, headers=ENGLISH,
        follow_redirects=False,
    ).status_code == 303  # fmt: skip
    assert client.get(f"/m/{shop.slug}/logo.png").status_code == 404


def _text_chunk(key: str, value: str) -> Any:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, value)
    return info


def test_what_is_not_a_good_image_is_refused_in_words_and_changes_nothing(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    token = owner_token(client, shop)
    assert upload(client, token, "ok.png", image_bytes("PNG"), "image/png").status_code == 303
    before = stored(app, shop)
    assert before[1] is not None
    jpeg = image_bytes("JPEG")
    bad = {
        "text.png": (b"just some text, not a picture\n" * 20, "image/png"),
        "cut.jpg": (jpeg[: len(jpeg) // 2], "image/jpeg"),
        "bomb.png": (image_bytes("PNG", (6000, 6000)), "image/png"),
        "huge.png": (b"\x89PNG" + b"\0" * (2 * 1024 * 1024 + 10), "image/png"),
    }
    wording = {
        "text.png": "is not a PNG, JPEG or WebP image",
        "cut.jpg": "is not a PNG, JPEG or WebP image",
        "bomb.png": "too many pixels",
        "huge.png": "larger than 2 MB",
    }
    for name, (data, kind) in bad.items():
        response = upload(client, token, name, data, kind)
        assert response.status_code == 400, name
        assert "text/html" in response.headers["content-type"]
        assert wording[name] in response.text, name
        after = stored(app, shop)
        assert after[0].logo_version == before[0].logo_version
        assert after[1] is not None and after[1].png == before[1].png


def test_a_light_accent_is_refused_and_a_dark_one_kept(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    token = owner_token(client, shop)
    response = accent(client, token, "#ffff00")
    assert response.status_code == 400
    assert "too light to read" in response.text and "4.5:1" in response.text
    assert "darker shade, such as #" in response.text
    assert stored(app, shop)[0].accent_color is None
    assert accent(client, token, "not a colour").status_code == 400

    assert accent(client, token, "#1B5E20").status_code == 303
    assert stored(app, shop)[0].accent_color == "#1b5e20"
    page = client.get(f"/m/{shop.slug}", headers=ENGLISH).text
    assert f'href="/m/{shop.slug}/look.css?v=1b5e20"' in page and "shop-look" in page
    css = client.get(f"/m/{shop.slug}/look.css?v=1b5e20")
    assert css.headers["content-type"].startswith("text/css")
    assert "--shop-accent: #1b5e20" in css.text

    reset = client.post(
        "/merchant/account/accent", data={"csrf_token": token, "accent": "#1b5e20", "reset": "1"},
        headers=ENGLISH, follow_redirects=False,
    )  # fmt: skip
    assert reset.status_code == 303
    assert stored(app, shop)[0].accent_color is None
    assert client.get(f"/m/{shop.slug}/look.css").status_code == 404


def test_the_card_view_carries_each_shops_own_look(
    client: TestClient, shop: Shop, other_shop: Shop
) -> None:
    card = new_card(client)
    for each in (shop, other_shop):
        assert stamp(client, each, card).status_code == 201
    token = owner_token(client, shop)
    assert upload(client, token, "l.png", image_bytes("PNG"), "image/png").status_code == 303
    assert accent(client, token, "#1b5e20").status_code == 303

    cards = client.get(f"/api/v1/cards/{card}").json()["cards"]
    looks = {c["merchant"]["slug"]: c["merchant"] for c in cards}
    mine, other = looks[shop.slug], looks[other_shop.slug]
    assert mine["accent_color"] == "#1b5e20"
    assert mine["logo_url"].startswith(f"/m/{shop.slug}/logo.png?v=")
    assert client.get(mine["logo_url"]).headers["content-type"] == "image/png"
    assert other["accent_color"] is None and other["logo_url"] is None


def test_the_poster_and_printed_cards_use_the_look(
    app: FastAPI, client: TestClient, shop: Shop
) -> None:
    token = owner_token(client, shop)
    assert upload(client, token, "l.png", image_bytes("PNG"), "image/png").status_code == 303
    assert accent(client, token, "#1b5e20").status_code == 303
    poster = client.get("/merchant/print/poster", headers=ENGLISH).text
    assert f"/m/{shop.slug}/look.css?v=1b5e20" in poster and "shop-look" in poster
    assert f'src="/m/{shop.slug}/logo.png?v=' in poster
    cards = client.post(
        "/merchant/print/cards", data={"csrf_token": token, "count": "10"}, headers=ENGLISH
    ).text
    assert f"/m/{shop.slug}/look.css?v=1b5e20" in cards
    assert f'class="logo" src="/m/{shop.slug}/logo.png?v=' in cards

    # `treu cards print`: one self-contained file, the logo and colour inside it.
    with Session(app.state.engine) as session:
        html = card_sheet(session=session, settings=app.state.settings, slug=shop.slug, count=1)
    assert 'class="logo" src="data:image/png;base64,' in html
    assert "--shop-accent: #1b5e20" in html and 'class="card-sheet shop-look"' in html
