"""Card tokens: signing, offline verification, parsing what scanners type."""

import base64

import nacl.encoding
import nacl.hash
import nacl.signing
import nacl.utils
import pytest

from app.tokens import crypto


def make_keyring(*signing: nacl.signing.SigningKey) -> crypto.Keyring:
    return crypto.Keyring(
        signing_keys=signing or (nacl.signing.SigningKey.generate(),),
        holder_key=nacl.utils.random(32),
        card_ref_key=nacl.utils.random(32),
        wallet_key=nacl.utils.random(32),
        session_key=nacl.utils.random(32),
    )


@pytest.fixture
def keyring() -> crypto.Keyring:
    return make_keyring()


def test_token_is_upper_case_base32_of_fixed_length(keyring: crypto.Keyring) -> None:
    token = crypto.sign_card(keyring, crypto.new_card_id())
    assert len(token) == crypto.TOKEN_CHARS == 136
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def test_token_verifies_offline_with_the_published_public_key(keyring: crypto.Keyring) -> None:
    card_id = crypto.new_card_id()
    token = crypto.sign_card(keyring, card_id)
    published = keyring.public_keys()[0]
    raw = crypto.b32decode(token)
    assert raw[1:5].hex() == published["kid"]
    verify_key = nacl.signing.VerifyKey(base64.b64decode(published["public_key"]))
    verify_key.verify(crypto.SIGNATURE_DOMAIN + raw[1:5] + raw[5:21], raw[21:])
    assert raw[5:21] == card_id


def test_forged_and_damaged_tokens_are_refused(keyring: crypto.Keyring) -> None:
    token = crypto.sign_card(keyring, crypto.new_card_id())
    other = make_keyring()
    forged = crypto.sign_card(other, crypto.new_card_id())
    flipped = token[:50] + ("A" if token[50] != "A" else "B") + token[51:]
    for bad in (forged, flipped, token[:-1], token + "A", token.lower()[:10], "", "ÄÖÜ" * 50):
        with pytest.raises(crypto.TokenError):
            crypto.verify_token(keyring, bad)


def test_retired_key_still_verifies_old_cards() -> None:
    old = nacl.signing.SigningKey.generate()
    before = make_keyring(old)
    card_id = crypto.new_card_id()
    token = crypto.sign_card(before, card_id)
    after = make_keyring(nacl.signing.SigningKey.generate(), old)
    assert crypto.verify_token(after, token) == card_id
    assert crypto.find_card(after, token)[1] == card_id
    assert crypto.sign_card(after, card_id) != token  # new cards use the new key
    statuses = sorted(k["status"] for k in after.public_keys())
    assert statuses == ["current", "retired"]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t,
        lambda t: f"https://treu.example/c/{t}",
        lambda t: f"HTTPS://TREU.EXAMPLE/C/{t}\n",
        lambda t: f"httpsÖ--treu.example-c-{t}",  # US scanner, German layout: punctuation
        lambda t: f"https:&&treu.example&c&{t}".lower(),  # caps lock inverted
        lambda t: "HTTPSÖ--TREU.EXAMPLE-C-" + t.translate(str.maketrans("YZ", "ZY")),  # QWERTZ
        lambda t: "  " + t + "\r\n",
    ],
)
def test_finds_the_token_in_what_a_scanner_typed(keyring: crypto.Keyring, mangle: object) -> None:
    card_id = crypto.new_card_id()
    token = crypto.sign_card(keyring, card_id)
    assert callable(mangle)
    found, found_id = crypto.find_card(keyring, mangle(token))
    assert (found, found_id) == (token, card_id)


def test_garbage_never_passes(keyring: crypto.Keyring) -> None:
    for text in ("", "A" * 136, "A" * 5000, "x" * 10_000, "\x00" * 200, "🙂" * 136):
        with pytest.raises(crypto.TokenError):
            crypto.find_card(keyring, text)


def test_recovery_code_round_trips_and_forgives_typing(keyring: crypto.Keyring) -> None:
    card_id = crypto.new_card_id()
    code = crypto.recovery_code(card_id)
    assert len(code.replace("-", "")) == 26
    assert crypto.card_id_from_recovery_code(code) == card_id
    assert crypto.card_id_from_recovery_code(code.lower().replace("-", " ")) == card_id
    with pytest.raises(crypto.TokenError):
        crypto.card_id_from_recovery_code(code[:-2])


def test_holders_differ_per_merchant_and_need_the_key(keyring: crypto.Keyring) -> None:
    card_id = crypto.new_card_id()
    a, b = crypto.holder_for(keyring, card_id, 1), crypto.holder_for(keyring, card_id, 2)
    assert a != b
    assert crypto.holder_for(keyring, card_id, 1) == a
    assert crypto.holder_for(make_keyring(), card_id, 1) != a


def test_keyed_hash_is_libsodiums_blake2b() -> None:
    # Holders and card refs already stored were made with libsodium: the bytes must not change.
    key, message = nacl.utils.random(32), nacl.utils.random(16)
    for person in (b"holder" + (7).to_bytes(8, "big"), b"card-ref", b"wallet"):
        for size in (16, 32):
            expected = nacl.hash.blake2b(
                message, digest_size=size, key=key, person=person,
                encoder=nacl.encoding.RawEncoder,
            )  # fmt: skip
            assert crypto.keyed_hash(key, person, message, size) == expected


def test_wallet_opens_only_with_the_card_id(keyring: crypto.Keyring) -> None:
    card_id = crypto.new_card_id()
    sealed = crypto.seal_wallet(keyring, card_id, [3, 1])
    assert crypto.open_wallet(keyring, card_id, sealed) == [1, 3]
    assert crypto.open_wallet(keyring, crypto.new_card_id(), sealed) == []
    assert b"merchants" not in sealed
