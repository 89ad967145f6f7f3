"""Settings from the environment (TREU_*), one instance per process."""

import re
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TREU_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str = ""
    public_url: str = "http://127.0.0.1:8000"
    # Keys may come from the environment (base64) instead of files under data_dir/keys.
    signing_key: str = ""
    retired_signing_keys: str = ""
    holder_key: str = ""
    card_ref_key: str = ""
    wallet_key: str = ""
    session_key: str = ""
    # Ledger rules that are not per program.
    undo_window_seconds: int = 600
    idempotency_retention_hours: int = 72
    max_body_bytes: int = 16_384
    k_anonymity: int = 10
    # How long a till's claim code (a QR for N stamps) can be claimed.
    claim_ttl_seconds: int = 120
    # Per-client rate limits, held in memory only ("off" for benchmarks and load tests, which
    # make thousands of cards from one address). Each is a `limits` string: "N/minute;M/hour".
    # A shop's Wi-Fi puts all its customers behind one address: the limits leave room for that.
    rate_limits: str = "on"
    rate_limit_cards: str = "30/minute;300/hour"
    rate_limit_restore: str = "10/minute;60/hour"
    rate_limit_codes: str = "30/minute;300/hour"
    rate_limit_pairing: str = "10/minute;60/hour"
    rate_limit_logins: str = "10/minute;60/hour"
    # Password checks (Argon2id, 64 MiB and a fifth of a second of a core each) running at once;
    # a login beyond them is answered 503 with Retry-After. Bounds the memory logins can take.
    password_checks: int = 2
    # Housekeeping (app/maintenance.py): how often it runs in `treu serve`, and how long a
    # one-tap card that no shop stamped may stay unseen before it is purged.
    maintenance_interval_seconds: int = 3600
    card_idle_days: int = 30
    # Who runs this treu, for the imprint (/imprint) and the privacy notice (/privacy). The law
    # of the operator's country (in Austria § 5 ECG and § 25 MedienG, in Germany § 5 DDG) says
    # what must be given; the pages show a notice to the operator while the name is unset.
    operator_name: str = ""
    operator_address: str = ""  # postal address, lines separated by ";" or new lines
    operator_email: str = ""
    operator_phone: str = ""
    operator_register: str = ""  # e.g. "FN 123456a, Handelsgericht Wien"
    operator_vat_id: str = ""
    operator_authority: str = ""  # the supervising authority or trade licence, if any
    # Who answers privacy questions, if not the operator's address above (a data protection
    # officer, say), and the supervisory authority a customer may complain to.
    privacy_contact: str = ""
    privacy_authority: str = ""  # e.g. "Österreichische Datenschutzbehörde, dsb.gv.at"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'treu.db').resolve()}"

    @property
    def operator_address_lines(self) -> list[str]:
        return [line.strip() for line in re.split(r"[;\n]", self.operator_address) if line.strip()]

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/")
