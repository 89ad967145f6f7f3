"""What tests share besides fixtures, one module per kind of thing:

- clock:    the hand-moved Clock the app runs on in tests
- database: the test database (PG_URL) and a dump of everything stored
- shops:    a merchant with a program and a device, its pairing codes, its ledger commands
- cards:    a card made and stamped through the services, without HTTP
- api:      a customer and a till speaking the public JSON API through a TestClient
- pages:    an owner using the merchant area's HTML forms (login, CSRF tokens)
- browser:  Debian's headless Chromium, a live server, QR decoding, screenshots
- cli:      the `treu` command run in-process
- rollups:  the dashboard's rollup tables as stored, and as recomputed from the ledger

Fixtures stay in the conftest files; test modules import only from here, never from a conftest
or from another test module.
"""
