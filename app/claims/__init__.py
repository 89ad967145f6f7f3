"""Claim codes: a till's single-use, short-lived QR for N stamps, claimed by a card."""
