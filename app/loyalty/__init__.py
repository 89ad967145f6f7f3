"""Loyalty mechanics: reward levels, regulars' status (tiers) and promotions, every one decided
from what a shop already holds about a card (its per-shop balance), so nothing new is learned
about anyone."""
