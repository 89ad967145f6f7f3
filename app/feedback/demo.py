"""Demo feedback: ratings, comments and replies for recent demo visits, and review-link clicks.

Written in bulk on the demo's connection, from the ledger the demo wrote: each feedback belongs
to a real recent visit (its holder and entry), as one given through the form would.
"""

import json
import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert

from app.feedback.models import Feedback, ReviewClick
from app.feedback.service import EDIT_WINDOW, VISIT_WINDOW, new_feedback_id
from app.ledger import service as ledger

feedback_table = Feedback.__table__  # type: ignore[attr-defined]
click_table = ReviewClick.__table__  # type: ignore[attr-defined]

# (rating, comment, tags); a few comments show where personal data was taken out.
SAMPLES: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (5, "Bester Cappuccino im Grätzl, immer freundlich!", ("service", "quality")),
    (5, "Super nett, danke!", ("service",)),
    (5, "", ()),
    (4, "Gut, aber samstags sehr voll.", ("waiting_time",)),
    (4, "Lovely staff, a bit pricey.", ("service", "price")),
    (4, "", ("quality",)),
    (3, "Okay. Croissants waren heute trocken.", ("quality",)),
    (3, "20 Minuten gewartet, ruft mich an: [removed]", ("waiting_time",)),
    (2, "Kaffee war lauwarm.", ("quality",)),
    (2, "Waited far too long for two coffees.", ("waiting_time",)),
    (1, "Unfreundlich an der Kassa. Meine Mail: [removed]", ("service",)),
)
WEIGHTS = (14, 10, 8, 9, 6, 5, 4, 3, 3, 2, 2)
REPLIES = {
    1: "Das tut uns sehr leid. Wir haben mit dem Team gesprochen. Kommen Sie gern wieder!",
    2: "Danke für den Hinweis, wir kümmern uns darum.",
    3: "Danke! Wir arbeiten daran.",
    4: "Vielen Dank für Ihr Feedback!",
    5: "Danke, das freut uns sehr!",
}


def seed_demo_feedback(
    conn: Connection, *, merchant_id: int, rng: random.Random, now: datetime, share: float = 0.35
) -> int:
    """Feedback for about `share` of the holders with a visit in the last 30 days; returns how
    many were written. Review-link clicks for the last 90 days are added too."""
    recent = ledger.recent_stamps(conn, merchant_id=merchant_id, since=now - VISIT_WINDOW)
    latest: dict[str, Any] = {}
    for row in recent:
        latest.setdefault(row.holder, row)
    rows = []
    for holder, visit in latest.items():
        if rng.random() > share:
            continue
        rating, comment, tags = rng.choices(SAMPLES, weights=WEIGHTS)[0]
        given = min(visit.created_at + timedelta(minutes=rng.randrange(5, 240)), now)
        replied = rating <= 3 or rng.random() < 0.3
        replied_at = given + timedelta(hours=rng.uniform(0.5, 30))
        if replied_at > now:
            replied = False
        rows.append(
            {
                "merchant_id": merchant_id,
                "id": new_feedback_id(),
                "holder": holder,
                "visit_entry_id": visit.id,
                "rating": rating,
                "recommend": _recommend(rng, rating) if rng.random() < 0.6 else None,
                "comment": comment,
                "tags": json.dumps(list(tags)),
                "created_at": given,
                "updated_at": given,
                "edits": 0,
                # The newest ones are still unread in the inbox.
                "read_at": given + timedelta(hours=1) if now - given > EDIT_WINDOW else None,
                "hidden_at": None,
                "reply": REPLIES[rating] if replied else None,
                "replied_at": replied_at if replied else None,
                "reply_read_at": None,
            }
        )
    if rows:
        conn.execute(insert(feedback_table), rows)
    days = [(now - timedelta(days=d)).date() for d in range(90)]
    clicks = [{"merchant_id": merchant_id, "day": d, "clicks": rng.randrange(0, 4)} for d in days]
    clicks = [c for c in clicks if c["clicks"]]
    if clicks:
        conn.execute(insert(click_table), clicks)
    return len(rows)


def _recommend(rng: random.Random, rating: int) -> int:
    """A 0-10 answer that fits the rating, as people answer it."""
    low, high = {1: (0, 4), 2: (1, 6), 3: (4, 8), 4: (6, 10), 5: (8, 10)}[rating]
    return rng.randint(low, high)
