"""Card tokens: signing, parsing and the per-merchant pseudonyms derived from a card."""
