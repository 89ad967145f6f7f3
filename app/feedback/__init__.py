"""Anonymous feedback after a visit, the merchant's replies, and the public review link."""
