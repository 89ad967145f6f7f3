"""Pure card-token crypto: no database, no I/O.

A token is ``base32(version | key_id | card_id | signature)``: 1 + 4 + 16 + 64 = 85 bytes,
exactly 136 base32 characters, so it needs no padding and fits the QR alphanumeric mode.
"""

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field

import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.secret
import nacl.signing
import nacl.utils

TOKEN_VERSION = 1
CARD_ID_BYTES = 16
KEY_ID_BYTES = 4
SIGNATURE_BYTES = 64
TOKEN_BYTES = 1 + KEY_ID_BYTES + CARD_ID_BYTES + SIGNATURE_BYTES
TOKEN_CHARS = TOKEN_BYTES * 8 // 5
# Signatures over a card id are only ever made in this domain, so a signature made by the same
# key for anything else can never pass as a card.
SIGNATURE_DOMAIN = b"treu/card-token/v1\x00"
_TOKEN_RUN = re.compile(rf"[A-Z2-7]{{{TOKEN_CHARS}}}")
# A whole token is exactly 680 bits: read as one base-32 number it needs no padding rules.
_BASE32_DIGITS = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789abcdefghijklmnopqrstuv"
)
_LONG_RUN = re.compile(rf"[A-Z2-7]{{{TOKEN_CHARS},}}")
MAX_SCAN_CHARS = 4096

# What a scanner that "types" a code produces when its keyboard layout does not match the
# computer's. Each map undoes one common mismatch; the signature decides which reading is right.
_LAYOUT_REPAIRS: tuple[dict[str, str | int | None], ...] = (
    {},
    {"Y": "Z", "Z": "Y"},  # US scanner on a German/Austrian/Swiss (QWERTZ) keyboard
    {  # US scanner on a French (AZERTY) keyboard: letters swapped, digits unshifted
        "A": "Q", "Q": "A", "Z": "W", "W": "Z", "É": "2", '"': "3", "'": "4",
        "(": "5", "-": "6", "È": "7",
    },
)  # fmt: skip
_REPAIR_TABLES = tuple(str.maketrans(repair) for repair in _LAYOUT_REPAIRS if repair)


class TokenError(ValueError):
    """The text is not a valid treu card token."""


def b32encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def b32decode(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def key_id_of(verify_key: nacl.signing.VerifyKey) -> bytes:
    return nacl.hash.blake2b(
        bytes(verify_key),
        digest_size=KEY_ID_BYTES,
        person=b"treu-key-id",
        encoder=nacl.encoding.RawEncoder,
    )


@dataclass(frozen=True)
class Keyring:
    """The server's secret keys. The first signing key signs; every key verifies."""

    signing_keys: tuple[nacl.signing.SigningKey, ...]
    holder_key: bytes
    card_ref_key: bytes
    wallet_key: bytes
    session_key: bytes
    verify_keys: dict[bytes, nacl.signing.VerifyKey] = field(init=False)

    def __post_init__(self) -> None:
        verify = {key_id_of(k.verify_key): k.verify_key for k in self.signing_keys}
        object.__setattr__(self, "verify_keys", verify)

    @property
    def current_key_id(self) -> bytes:
        return key_id_of(self.signing_keys[0].verify_key)

    def public_keys(self) -> list[dict[str, str]]:
        """The verify keys as published in /.well-known/treu-keys.json."""
        current = self.current_key_id
        return [
            {
                "kid": kid.hex(),
                "alg": "Ed25519",
                "public_key": base64.b64encode(bytes(vk)).decode(),
                "status": "current" if kid == current else "retired",
            }
            for kid, vk in self.verify_keys.items()
        ]


def new_card_id() -> bytes:
    return secrets.token_bytes(CARD_ID_BYTES)


def sign_card(keyring: Keyring, card_id: bytes) -> str:
    """Make the token for a card id with the current signing key."""
    kid = keyring.current_key_id
    signed = keyring.signing_keys[0].sign(SIGNATURE_DOMAIN + kid + card_id)
    return b32encode(bytes([TOKEN_VERSION]) + kid + card_id + signed.signature)


def verify_token(keyring: Keyring, token: str) -> bytes:
    """Check a bare 136-character token and return its card id."""
    if len(token) != TOKEN_CHARS or not _TOKEN_RUN.fullmatch(token):
        raise TokenError("not a card token")
    raw = int(token.translate(_BASE32_DIGITS), 32).to_bytes(TOKEN_BYTES, "big")
    version, kid = raw[0], raw[1 : 1 + KEY_ID_BYTES]
    card_id = raw[1 + KEY_ID_BYTES : 1 + KEY_ID_BYTES + CARD_ID_BYTES]
    signature = raw[1 + KEY_ID_BYTES + CARD_ID_BYTES :]
    verify_key = keyring.verify_keys.get(kid)
    if version != TOKEN_VERSION or verify_key is None:
        raise TokenError("unknown token version or key")
    try:
        verify_key.verify(SIGNATURE_DOMAIN + kid + card_id, signature)
    except nacl.exceptions.BadSignatureError:
        raise TokenError("signature does not match") from None
    return card_id


def find_card(keyring: Keyring, scanned: str) -> tuple[str, bytes]:
    """Find and verify the token in whatever a scanner or a person typed.

    Accepts a bare token, a card URL, or either mangled by a keyboard-layout mismatch or caps
    lock. Returns the canonical token and the card id.
    """
    if not isinstance(scanned, str) or len(scanned) > MAX_SCAN_CHARS:
        raise TokenError("not a card token")
    upper = scanned.upper()
    for table in (None, *_REPAIR_TABLES):
        text = upper.translate(table) if table else upper
        # A mangled separator may itself read as a base32 letter and join the run, so try both
        # ends of a long run; the token is last in a card URL.
        for run in reversed(_LONG_RUN.findall(text)):
            for candidate in dict.fromkeys((run[-TOKEN_CHARS:], run[:TOKEN_CHARS])):
                try:
                    return candidate, verify_token(keyring, candidate)
                except TokenError:
                    continue
    raise TokenError("not a card token")


def recovery_code(card_id: bytes) -> str:
    """The card id in base32, grouped by four for typing: 26 characters, 7 groups."""
    text = b32encode(card_id)
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def card_id_from_recovery_code(code: str) -> bytes:
    cleaned = re.sub(r"[\s\-_.]", "", code.upper()).replace("0", "O").replace("1", "I")
    if not re.fullmatch(r"[A-Z2-7]{26}", cleaned):
        raise TokenError("not a recovery code")
    raw = b32decode(cleaned)
    if b32encode(raw) != cleaned:  # the last character carries 2 unused bits
        raise TokenError("not a recovery code")
    return raw


def keyed_hash(key: bytes, person: bytes, message: bytes, size: int = 16) -> bytes:
    """Keyed BLAKE2b, personalised per use, so no two uses of one key can be matched.

    hashlib's BLAKE2b gives the same bytes as libsodium's (tests/tokens hold them to it) at a
    tenth of the cost of the call through PyNaCl; three run per stamp.
    """
    return hashlib.blake2b(message, digest_size=size, key=key, person=person).digest()


def holder_for(keyring: Keyring, card_id: bytes, merchant_id: int) -> str:
    """The card's pseudonym at one merchant: unlinkable to its pseudonym anywhere else."""
    person = b"holder" + merchant_id.to_bytes(8, "big")
    return keyed_hash(keyring.holder_key, person, card_id).hex()


def shop_code(keyring: Keyring, holder: str) -> str:
    """The card's short code at one shop (4 base32 characters), shown on the till and on the
    card page so a cashier sees the right card was scanned. Derived from the per-shop holder,
    so it differs from shop to shop and nothing new is stored."""
    return b32encode(keyed_hash(keyring.holder_key, b"shop-code", bytes.fromhex(holder), 3))[:4]


def card_ref(keyring: Keyring, card_id: bytes) -> str:
    """What the card table is keyed by: a keyed hash, never the card id itself."""
    return keyed_hash(keyring.card_ref_key, b"card-ref", card_id).hex()


def request_fingerprint(keyring: Keyring, merchant_id: int, canonical: bytes) -> str:
    """Fingerprint of a request body for idempotency, keyed per merchant.

    A plain hash of the same body at two merchants would be equal and link the card.
    """
    person = b"idem" + merchant_id.to_bytes(8, "big")
    return keyed_hash(keyring.holder_key, person, canonical).hex()


def _wallet_box(keyring: Keyring, card_id: bytes) -> nacl.secret.SecretBox:
    key = keyed_hash(keyring.wallet_key, b"wallet", card_id, size=nacl.secret.SecretBox.KEY_SIZE)
    return nacl.secret.SecretBox(key)


def seal_wallet(keyring: Keyring, card_id: bytes, merchant_ids: list[int]) -> bytes:
    """Seal the list of merchants a card has visited under a key only the card can rebuild."""
    plaintext = json.dumps({"merchants": sorted(set(merchant_ids))}).encode()
    return bytes(_wallet_box(keyring, card_id).encrypt(plaintext))


def open_wallet(keyring: Keyring, card_id: bytes, sealed: bytes | None) -> list[int]:
    if not sealed:
        return []
    try:
        plaintext = _wallet_box(keyring, card_id).decrypt(sealed)
    except nacl.exceptions.CryptoError:
        return []
    return [int(m) for m in json.loads(plaintext)["merchants"]]
