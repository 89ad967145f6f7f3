"""Every table, imported in one place for Alembic and the test suite."""

from app.analytics.models import ActivityRollup, CardRollup, CohortRollup, VisitRollup
from app.claims.models import ClaimCode
from app.feedback.models import Feedback, FeedbackSettings, ReviewClick
from app.ledger.models import Balance, IdempotencyRecord, LedgerEntry
from app.loyalty.models import Promotion, RewardLevel, Tier
from app.merchants.models import (
    Device,
    LoginThrottle,
    Merchant,
    MerchantLogo,
    Owner,
    OwnerSession,
    PairingCode,
    Program,
)
from app.tokens.models import Card

__all__ = [
    "ActivityRollup",
    "Balance",
    "Card",
    "CardRollup",
    "ClaimCode",
    "CohortRollup",
    "Device",
    "Feedback",
    "FeedbackSettings",
    "IdempotencyRecord",
    "LedgerEntry",
    "LoginThrottle",
    "Merchant",
    "MerchantLogo",
    "Owner",
    "OwnerSession",
    "PairingCode",
    "Program",
    "Promotion",
    "ReviewClick",
    "RewardLevel",
    "Tier",
    "VisitRollup",
]
