"""Printables: sheets of anonymous cards for customers without a smartphone, and the counter
poster's QR. The card sheet is one template and one stylesheet (static/css/cards.css), used by
the merchant area's print page and by `treu cards print` (a self-contained HTML file)."""

import base64
import re
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup
from sqlmodel import Session

from app.clock import utcnow
from app.config import Settings
from app.merchants import branding
from app.merchants.models import Merchant
from app.merchants.service import get_merchant
from app.tokens import crypto, qr
from app.tokens.crypto import Keyring
from app.tokens.keys import load_keyring
from app.tokens.service import create_card
from app.web import templates
from app.web.assets import STATIC_DIR

CARDS_PER_SHEET = 10  # 2 by 5 on an A4 page


@dataclass(frozen=True)
class PrintedCard:
    qr: Markup
    recovery_code: str


def inline_svg(svg: str) -> Markup:
    """An SVG document as markup to place inside a page (without its XML declaration)."""
    return Markup(re.sub(r"^<\?xml[^>]*\?>\s*", "", svg))


def merchant_url(base_url: str, slug: str) -> str:
    """Where the counter poster's QR leads: the merchant's page, which hands out a card."""
    return f"{base_url}/m/{slug}"


def restore_address(base_url: str) -> str:
    """Where a recovery code is typed, short enough to copy from paper (no https://)."""
    return base_url.split("://", 1)[-1] + "/restore"


def new_printed_cards(
    *, session: Session, keyring: Keyring, base_url: str, now: datetime, count: int
) -> list[PrintedCard]:
    """Create count new anonymous cards, each as its QR (the card URL) and recovery code.

    The tokens exist only on the paper: the server keeps a keyed hash of each card id, as
    for every other card, and the cards belong to no merchant until they are stamped.
    """
    cards = []
    for _ in range(count):
        card = create_card(session=session, keyring=keyring, now=now, printed=True)
        svg = qr.qr_svg(qr.card_qr_text(base_url, card.token))
        cards.append(PrintedCard(inline_svg(svg), crypto.recovery_code(card.card_id)))
    return cards


def logo_data_url(session: Session, merchant: Merchant) -> str | None:
    """The shop's logo inside the page itself: the card file is opened without a server."""
    png = branding.logo_png(session=session, merchant=merchant)
    return "data:image/png;base64," + base64.b64encode(png).decode() if png else None


def sheets(cards: list[PrintedCard]) -> list[list[PrintedCard]]:
    """The cards in pages of CARDS_PER_SHEET."""
    return [cards[i : i + CARDS_PER_SHEET] for i in range(0, len(cards), CARDS_PER_SHEET)]


def card_sheet(*, session: Session, settings: Settings, slug: str, count: int) -> str:
    """Create count new cards and lay them out, ten to an A4 page, with cut marks: a
    self-contained HTML file (its stylesheet inline) to open in a browser and print."""
    merchant: Merchant = get_merchant(session=session, slug=slug)
    cards = new_printed_cards(
        session=session, keyring=load_keyring(settings), base_url=settings.base_url,
        now=utcnow(), count=count,
    )  # fmt: skip
    css = (STATIC_DIR / "css" / "cards.css").read_text()
    accent = merchant.accent_color
    return templates.get_template("merchant/cards_file.html").render(
        merchant=merchant,
        sheets=sheets(cards),
        css=Markup(css),
        look=Markup(branding.look_css(accent)) if accent else "",
        logo_src=logo_data_url(session, merchant),
        lang="en",
        restore=restore_address(settings.base_url),
    )
