"""Every table, imported in one place for Alembic and the test suite."""

from app.claims.models import ClaimCode
from app.ledger.models import Balance, IdempotencyRecord, LedgerEntry
from app.merchants.models import Device, Merchant, Owner, PairingCode, Program
from app.tokens.models import Card

__all__ = [
    "Balance",
    "Card",
    "ClaimCode",
    "Device",
    "IdempotencyRecord",
    "LedgerEntry",
    "Merchant",
    "Owner",
    "PairingCode",
    "Program",
]
