"""How a shop looks: its logo and accent colour.

A logo is whatever image the owner uploads, so it is never served as sent: Pillow opens it
(PNG, JPEG or WebP only, within a pixel limit), and treu draws it anew as a PNG of at most
LOGO_SIDE pixels a side, without metadata. An accent colour is accepted only where white text
on it, and it as text on the page, meet WCAG AA (4.5:1), as computed by coloraide.
"""

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from datetime import datetime

from coloraide import Color
from PIL import Image, UnidentifiedImageError
from sqlmodel import Session

from app.merchants.models import Merchant, MerchantLogo

MAX_LOGO_BYTES = 2 * 1024 * 1024
# An image that decodes to more pixels than this is refused before it is decoded (a
# "decompression bomb": a few kilobytes that unpack to gigabytes).
MAX_LOGO_PIXELS = 25_000_000
LOGO_SIDE = 512
LOGO_FORMATS = ("PNG", "JPEG", "WEBP")

# What the accent is checked against: white button text, and the page (base.css --paper and
# --canvas) when it is the colour of text or links.
AA_NORMAL_TEXT = 4.5
BACKGROUNDS = ("#ffffff", "#f4f5f0")
_HEX = re.compile(r"^#[0-9a-f]{6}$")


class LogoRefused(ValueError):
    """The upload is not an image treu takes; `reason`: too-large, not-an-image, too-many-pixels."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def reencode_logo(data: bytes) -> bytes:
    """The upload drawn anew as a PNG that fits a LOGO_SIDE square, without metadata."""
    if len(data) > MAX_LOGO_BYTES:
        raise LogoRefused("too-large")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; treu refuses from its own.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=LOGO_FORMATS) as probe:
                if probe.width * probe.height > MAX_LOGO_PIXELS:
                    raise LogoRefused("too-many-pixels")
                probe.verify()
            # verify() leaves the image unusable: open it again to decode it.
            with Image.open(io.BytesIO(data), formats=LOGO_FORMATS) as image:
                image.load()
                drawn = _fresh_copy(image)
    except LogoRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as bomb:
        raise LogoRefused("too-many-pixels") from bomb
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as bad:
        # Not one of the formats, truncated or corrupt: Pillow's errors for each.
        raise LogoRefused("not-an-image") from bad
    out = io.BytesIO()
    drawn.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _fresh_copy(image: Image.Image) -> Image.Image:
    """The pixels only (no EXIF, ICC profile or text chunks), scaled down to fit."""
    mode = "RGBA" if image.mode in ("RGBA", "LA", "P", "PA") else "RGB"
    pixels = image.convert(mode)
    pixels.thumbnail((LOGO_SIDE, LOGO_SIDE), Image.Resampling.LANCZOS)
    fresh = Image.new(mode, pixels.size)
    fresh.paste(pixels)
    return fresh


def logo_version(png: bytes) -> str:
    return hashlib.sha256(png).hexdigest()[:12]


def logo_url(slug: str, version: str | None) -> str | None:
    """Where the shop's logo is served (the version in the URL lets browsers keep it)."""
    return f"/m/{slug}/logo.png?v={version}" if version else None


def look_url(merchant: Merchant) -> str | None:
    """The shop's stylesheet (its accent colour), None when it uses treu's colours."""
    if merchant.accent_color is None:
        return None
    return f"/m/{merchant.slug}/look.css?v={merchant.accent_color.removeprefix('#')}"


def look_css(accent: str) -> str:
    """The stylesheet that colours an element of class shop-look (and what is in it)."""
    return f".shop-look {{ --brand: {accent}; --shop-accent: {accent}; }}\n"


@dataclass(frozen=True)
class AccentVerdict:
    """An accent colour checked: the colour as stored (#rrggbb) or why not, and a darker shade
    of it that would pass."""

    color: str | None
    problem: str | None = None
    contrast: float = 0.0
    suggestion: str | None = None


def check_accent(text: str) -> AccentVerdict:
    """Whether the colour may be the shop's accent (WCAG AA for normal text, 4.5:1)."""
    value = text.strip().lower()
    if not _HEX.match(value):
        return AccentVerdict(None, "not-a-colour")
    lowest = _lowest_contrast(value)
    if lowest >= AA_NORMAL_TEXT:
        return AccentVerdict(value, contrast=lowest)
    return AccentVerdict(None, "low-contrast", lowest, darker_shade(value))


def _lowest_contrast(value: str) -> float:
    color = Color(value)
    return min(color.contrast(back, method="wcag21") for back in ("white", *BACKGROUNDS))


def darker_shade(value: str) -> str:
    """The lightest shade of the colour (its OkLCh lightness lowered) that meets AA."""
    color = Color(value).convert("oklch")
    lightness = float(color["lightness"])
    while lightness > 0:
        lightness = round(lightness - 0.01, 2)
        shade = color.clone().set("lightness", lightness).convert("srgb").fit("srgb")
        hex_value = shade.to_string(hex=True, fit=True)
        if _lowest_contrast(hex_value) >= AA_NORMAL_TEXT:
            return hex_value
    return "#000000"


def set_accent(*, merchant: Merchant, color: str | None) -> None:
    """Store a checked accent colour (None: treu's own)."""
    merchant.accent_color = color


def set_logo(*, session: Session, merchant: Merchant, png: bytes, now: datetime) -> None:
    """Store a re-encoded logo in place of the shop's current one."""
    assert merchant.id is not None
    logo = session.get(MerchantLogo, merchant.id)
    if logo is None:
        logo = MerchantLogo(merchant_id=merchant.id, png=png, created_at=now)
    logo.png, logo.created_at = png, now
    session.add(logo)
    merchant.logo_version = logo_version(png)
    session.add(merchant)


def remove_logo(*, session: Session, merchant: Merchant) -> None:
    """Delete the shop's logo, if it has one."""
    logo = session.get(MerchantLogo, merchant.id)
    if logo is not None:
        session.delete(logo)
    merchant.logo_version = None
    session.add(merchant)


def logo_png(*, session: Session, merchant: Merchant) -> bytes | None:
    """The shop's logo as stored (a PNG treu drew), None when it has none."""
    if merchant.logo_version is None:
        return None
    logo = session.get(MerchantLogo, merchant.id)
    return logo.png if logo is not None else None
