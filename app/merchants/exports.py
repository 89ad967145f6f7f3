"""CSV exports of a merchant's own data: the ledger (by holder pseudonym) and daily aggregates.

The ledger holds no card id or token, only the per-merchant holder pseudonym, and the export
keeps it that way. Rows are streamed in chunks, so a ledger of millions of entries never sits in
memory at once.
"""

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from app.ledger import service as ledger
from app.merchants.models import Device, Merchant, Program, merchant_zone

LEDGER_COLUMNS = (
    "entry_id", "time", "kind", "stamps", "program_id", "program", "holder", "device_id",
    "device", "undoes_entry_id",
)  # fmt: skip
DAILY_COLUMNS = (
    "day", "visits", "new_cards", "scans", "stamps", "redemptions", "voids", "rewards_earned",
)  # fmt: skip
CHUNK_ROWS = 2000
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(text: str) -> str:
    """Free text as a CSV cell that a spreadsheet shows instead of evaluating."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def period_bounds(start: date, end: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants that bound the merchant-local days start..end (both included)."""
    lo = datetime.combine(start, time(0), zone).astimezone(UTC)
    hi = datetime.combine(end + timedelta(days=1), time(0), zone).astimezone(UTC)
    return lo, hi


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """Header and rows as CSV text, a chunk of rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for count, row in enumerate(rows, start=1):
        writer.writerow(row)
        if count % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def ledger_rows(
    *, session: Session, merchant: Merchant, start: date, end: date
) -> Iterator[tuple[Any, ...]]:
    """The merchant's ledger entries of the local days start..end, oldest first."""
    zone = merchant_zone(merchant)
    lo, hi = period_bounds(start, end, zone)
    programs = {
        p.id: p.name
        for p in session.exec(select(Program).where(Program.merchant_id == merchant.id)).all()
    }
    devices = {
        d.id: d.label
        for d in session.exec(select(Device).where(Device.merchant_id == merchant.id)).all()
    }
    assert merchant.id is not None
    rows = ledger.merchant_entries(
        session=session, merchant_id=merchant.id, start=lo, end=hi, chunk=CHUNK_ROWS
    )
    for row in rows:
        created = row.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        yield (
            row.id, created.astimezone(zone).isoformat(), row.kind, row.delta, row.program_id,
            cell(programs.get(row.program_id, "")), row.holder, row.device_id or "",
            cell(devices.get(row.device_id, "") if row.device_id else ""),
            row.voids_entry_id or "",
        )  # fmt: skip


def ledger_csv(*, session: Session, merchant: Merchant, start: date, end: date) -> Iterator[str]:
    """The ledger export as CSV text chunks."""
    rows = ledger_rows(session=session, merchant=merchant, start=start, end=end)
    return csv_lines(LEDGER_COLUMNS, rows)


def daily_csv(rows: list[dict[str, Any]]) -> Iterator[str]:
    """Daily aggregates (one dict per day) as CSV text; counts only, no holder."""
    extra = [name for name in (rows[0] if rows else {}) if name not in DAILY_COLUMNS]
    header = [*DAILY_COLUMNS, *extra]
    return csv_lines(header, ([row.get(name, "") for name in header] for row in rows))
