"""Server keys: created once by `treu init` (files, mode 0600) or given as base64 env vars."""

import base64
import os
from pathlib import Path

import nacl.signing
import nacl.utils

from app.config import Settings
from app.tokens.crypto import Keyring

SECRET_KEYS = ("holder", "card-ref", "wallet", "session")


class KeyProblem(RuntimeError):
    """The keys cannot be used as asked; the message says what to do."""


class KeysMissing(KeyProblem):
    """The keys have not been created yet (run `treu init`)."""


def _env_name(name: str) -> str:
    return f"{name.replace('-', '_')}_key"


def _write_secret(path: Path, raw: bytes) -> bool:
    """Write a new key file with mode 0600; never overwrite an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(raw).decode() + "\n")
    return True


def _read_secret(path: Path) -> bytes:
    return base64.b64decode(path.read_text().strip())


def init_keys(settings: Settings) -> list[str]:
    """Create whichever key files are missing; return the names created."""
    created = []
    keys_dir = settings.keys_dir
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    if not settings.signing_key and _write_secret(
        keys_dir / "signing.key", bytes(nacl.signing.SigningKey.generate())
    ):
        created.append("signing")
    for name in SECRET_KEYS:
        if getattr(settings, _env_name(name)):
            continue
        if _write_secret(keys_dir / f"{name}.key", nacl.utils.random(32)):
            created.append(name)
    return created


def rotate_signing_key(settings: Settings) -> str:
    """Retire the current signing key (it still verifies old cards) and make a new one."""
    if settings.signing_key:
        raise KeyProblem(
            "the signing key comes from TREU_SIGNING_KEY: to rotate it, move it to "
            "TREU_RETIRED_SIGNING_KEYS and set a new TREU_SIGNING_KEY"
        )
    keys_dir = settings.keys_dir
    current = keys_dir / "signing.key"
    kid = load_keyring(settings).current_key_id.hex()
    retired_dir = keys_dir / "retired"
    retired_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Retire first, then replace: a crash in between leaves the old key current and retired,
    # never a card that nothing verifies.
    _write_secret(retired_dir / f"{kid}.key", _read_secret(current))
    tmp = keys_dir / "signing.key.new"
    tmp.unlink(missing_ok=True)
    _write_secret(tmp, bytes(nacl.signing.SigningKey.generate()))
    os.replace(tmp, current)
    return load_keyring(settings).current_key_id.hex()


def load_keyring(settings: Settings) -> Keyring:
    """Read the keys from the environment or from the key files."""
    keys_dir = settings.keys_dir

    def secret(name: str) -> bytes:
        from_env: str = getattr(settings, _env_name(name))
        if from_env:
            return base64.b64decode(from_env)
        path = keys_dir / f"{name}.key"
        if not path.exists():
            raise KeysMissing(f"missing key {path}; run `treu init` first")
        return _read_secret(path)

    signing = [nacl.signing.SigningKey(secret("signing"))]
    retired_env = [s for s in settings.retired_signing_keys.split(",") if s.strip()]
    signing += [nacl.signing.SigningKey(base64.b64decode(s)) for s in retired_env]
    retired_dir = keys_dir / "retired"
    if retired_dir.is_dir():
        for path in sorted(retired_dir.glob("*.key")):
            signing.append(nacl.signing.SigningKey(_read_secret(path)))
    return Keyring(
        signing_keys=tuple(signing),
        holder_key=secret("holder"),
        card_ref_key=secret("card-ref"),
        wallet_key=secret("wallet"),
        session_key=secret("session"),
    )
