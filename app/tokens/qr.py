"""Card QR codes: the card URL, upper-cased where that keeps it valid, drawn as SVG."""

import io
from urllib.parse import urlsplit

import qrcode
import qrcode.image.svg


def card_url(base_url: str, token: str) -> str:
    return f"{base_url}/c/{token}"


def card_qr_text(base_url: str, token: str) -> str:
    """What the card QR encodes.

    Upper case fits the QR alphanumeric mode (a smaller code, easier to scan). Scheme and host
    ignore case and treu also serves /C/…, so this only applies when the public URL has no path.
    """
    parts = urlsplit(base_url)
    if parts.path in ("", "/") and not parts.query:
        return f"{parts.scheme}://{parts.netloc}/C/{token}".upper()
    return card_url(base_url, token)


def qr_svg(text: str, *, border: int = 2) -> str:
    """An SVG of a QR code for text, scaled by its viewBox, with medium error correction."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=border)
    code.add_data(text)
    code.make(fit=True)
    image = code.make_image(image_factory=qrcode.image.svg.SvgPathFillImage)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue().decode()
