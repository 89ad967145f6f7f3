"""Stamps, redemptions and voids: an append-only ledger with materialised balances."""
