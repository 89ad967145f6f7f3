"""Printable sheets of anonymous cards for customers without a smartphone."""

import html

from sqlmodel import Session

from app.clock import utcnow
from app.config import Settings
from app.merchants.service import get_merchant
from app.tokens import crypto, qr
from app.tokens.keys import load_keyring
from app.tokens.service import create_card

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>treu cards: {name}</title>
<style>
@page {{ size: A4; margin: 10mm; }}
body {{ font-family: system-ui, sans-serif; margin: 0; }}
.sheet {{ display: grid; grid-template-columns: 1fr 1fr; grid-auto-rows: 54mm; gap: 0; }}
.card {{ border: 1px dashed #999; padding: 4mm; display: flex; gap: 4mm; align-items: center;
  break-inside: avoid; }}
.card svg {{ width: 44mm; height: 44mm; flex: none; }}
.card h2 {{ font-size: 12pt; margin: 0 0 2mm; }}
.card p {{ font-size: 8.5pt; margin: 0 0 1.5mm; }}
.code {{ font-family: ui-monospace, monospace; font-size: 9pt; letter-spacing: .5px; }}
.sheet:nth-of-type(n) {{ break-after: page; }}
</style></head><body>
{sheets}
</body></html>
"""


def card_sheet(*, session: Session, settings: Settings, slug: str, count: int) -> str:
    """Create count new cards and lay them out, ten to an A4 page, with cut lines."""
    merchant = get_merchant(session=session, slug=slug)
    keyring = load_keyring(settings)
    now = utcnow()
    cells = []
    for _ in range(count):
        card = create_card(session=session, keyring=keyring, now=now)
        svg = qr.qr_svg(qr.card_qr_text(settings.base_url, card.token))
        cells.append(
            f'<div class="card">{svg}<div><h2>{html.escape(merchant.name)}</h2>'
            "<p>Your anonymous stamp card. Show it at the till. "
            "Scan it with a phone to keep it there.</p>"
            "<p>Recovery code:</p>"
            f'<p class="code">{crypto.recovery_code(card.card_id)}</p></div></div>'
        )
    pages = [cells[i : i + 10] for i in range(0, len(cells), 10)]
    sheets = "\n".join(f'<section class="sheet">{"".join(p)}</section>' for p in pages)
    return _PAGE.format(name=html.escape(merchant.name), sheets=sheets)
