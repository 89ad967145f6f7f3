"""treu: anonymous, registration-free digital stamp cards for small merchants."""
