"""`make bench`, dashboard part: KPIs for a merchant with about a million ledger entries.

`treu demo` writes the history (one café gets about 60 % of the demo's ledger entries, so the
demo is sized for the café to reach BENCH_KPI_ENTRIES), then this times the service call the
dashboard page makes, for each preset period, and the page itself over HTTP with a logged-in
owner. The target is under 500 ms: the dashboard reads rollups, never the ledger.

BENCH_KPI_SIZES=1M,10M measures each size in turn (default: BENCH_KPI_ENTRIES, 1M); the demo
for 10 million entries takes about two hours on two CPUs, with 400,000 cards (a card for every
25 entries, as at 1M). BENCH_KPI_DATA=dir keeps the generated data there (in dir/1M, dir/10M …
when several sizes are measured) and reuses it on the next run; TREU_BENCH_DATABASE_URL measures
PostgreSQL instead of SQLite.
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import Session

from app.analytics import service
from app.clock import utcnow
from app.config import Settings
from app.db import make_engine
from app.ledger.models import LedgerEntry
from app.main import create_app
from app.merchants.models import Merchant

TREU = str(Path(sys.executable).with_name("treu"))
ENTRIES = int(os.environ.get("BENCH_KPI_ENTRIES", "1000000"))
# Measured: the café gets 0.94 ledger entries per demo visit (its share of visits, plus rewards,
# plus the bonuses of its happy hour, welcome and "Stammgast" tier: the demo's heavy regulars
# get one on most visits).
CAFE_ENTRIES_PER_VISIT = 0.94
ENTRIES_PER_CARD = 25
CARDS = int(os.environ.get("BENCH_KPI_CARDS", "0"))  # 0: one card per ENTRIES_PER_CARD
MONTHS = 12
RUNS = 7
TARGET_MS = 500.0


def treu(env: dict[str, str], *args: str) -> str:
    return subprocess.run([TREU, *args], env=env, check=True, capture_output=True, text=True).stdout


def sizes() -> list[int]:
    """Ledger sizes to measure: BENCH_KPI_SIZES ("1M,10M", "250000"), else BENCH_KPI_ENTRIES."""
    given = os.environ.get("BENCH_KPI_SIZES", "").replace(" ", "")
    if not given:
        return [ENTRIES]
    units = {"K": 1_000, "M": 1_000_000}
    out = []
    for part in filter(None, given.upper().split(",")):
        scale = units.get(part[-1], 1)
        out.append(round(float(part.rstrip("KM")) * scale))
    return out


def label(entries: int) -> str:
    return f"{entries // 1_000_000}M" if entries % 1_000_000 == 0 else str(entries)


def prepare(data: Path, env: dict[str, str], entries: int = ENTRIES) -> None:
    """Generate the demo history unless the data dir holds it from an earlier run."""
    if (data / "demo.json").exists():
        return
    visits = round(entries / CAFE_ENTRIES_PER_VISIT)
    cards = CARDS or max(40_000, entries // ENTRIES_PER_CARD)
    print(f"generating the demo: {cards} cards, {MONTHS} months, {visits} visits ...", flush=True)
    started = time.perf_counter()
    treu(env, "init")
    args = ["--cards", str(cards), "--months", str(MONTHS), "--visits", str(visits)]
    treu(env, "demo", *args)
    print(f"  done in {time.perf_counter() - started:.0f} s (history, then rollups)", flush=True)


def timed(call: object, runs: int = RUNS) -> tuple[float, float, float]:
    """Median and worst wall time and median CPU time of this process, of `runs` calls after
    one warm-up, in milliseconds. On a busy machine the CPU time is the steadier figure (with
    SQLite the database work is done in this process too)."""
    assert callable(call)
    call()
    times, cpu = [], []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        call()
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    return statistics.median(times), max(times), statistics.median(cpu)


def login(client: TestClient, email: str, password: str) -> None:
    page = client.get("/merchant/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the login page"
    answer = client.post(
        "/merchant/login",
        data={"email": email, "password": password, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def main() -> None:
    kept = os.environ.get("BENCH_KPI_DATA")
    wanted = sizes()
    slowest = []
    for entries in wanted:
        data = Path(kept or tempfile.mkdtemp(prefix="treu-bench-kpi-"))
        if kept and len(wanted) > 1:
            data = data / label(entries)
        data.mkdir(parents=True, exist_ok=True)
        try:
            slowest.append((entries, measure(data, entries)))
        finally:
            if not kept:  # the generated café is hundreds of MB
                shutil.rmtree(data, ignore_errors=True)
    if len(slowest) > 1:
        for entries, ms in slowest:
            print(f"{label(entries)} entries: slowest KPI computation {ms:.0f} ms")


def measure(data: Path, entries: int = ENTRIES) -> float:
    """Time the dashboard over the demo in `data`; the slowest period's median, in ms."""
    env = {**os.environ, "TREU_DATA_DIR": str(data)}
    env.pop("TREU_DATABASE_URL", None)
    db_url = os.environ.get("TREU_BENCH_DATABASE_URL")
    if db_url:
        env["TREU_DATABASE_URL"] = db_url
    prepare(data, env, entries)
    treu(env, "db", "upgrade")  # data kept from before a migration
    settings = Settings(data_dir=data, database_url=db_url or "")
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        cafe = session.execute(select(Merchant).where(Merchant.slug == "cafe-sonne")).scalar_one()
        ledger = LedgerEntry.__table__  # type: ignore[attr-defined]
        count = select(func.count()).select_from(ledger).where(ledger.c.merchant_id == cafe.id)
        entries = session.execute(count).scalar_one()
        today = service.today_of(cafe, utcnow())
        rows = []
        for choice in service.PERIODS:
            period = service.choose_period(choice=choice, today=today, start=None, end=None)
            median, worst, cpu = timed(
                lambda p=period: service.dashboard(  # type: ignore[misc]
                    session=session, merchant=cafe, period=p, k=settings.k_anonymity
                )
            )
            rows.append((f"KPIs, last {choice}", median, worst, cpu))
    engine.dispose()
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        login(client, "owner@cafe-sonne.example", "treu-demo")
        for choice in service.PERIODS:

            def page(choice: str = choice) -> None:
                answer = client.get(f"/merchant/dashboard?period={choice}")
                assert answer.status_code == 200, answer.status_code

            median, worst, cpu = timed(page)
            rows.append((f"GET /merchant/dashboard ({choice})", median, worst, cpu))
    store = "PostgreSQL" if db_url else "SQLite"
    load = os.getloadavg()[0]
    print(f"treu bench, dashboard KPIs: {store}, café with {entries:,} ledger entries")
    print(f"{os.cpu_count()} CPUs, load average {load:.1f} while measuring")
    print(f"{'what':<40}{'median ms':>11}{'worst ms':>10}{'CPU ms':>9}")
    for name, median, worst, cpu in rows:
        print(f"{name:<40}{median:>11.1f}{worst:>10.1f}{cpu:>9.1f}")
    slowest = max(median for name, median, _, _ in rows if name.startswith("KPIs"))
    verdict = "under" if slowest < TARGET_MS else "OVER"
    print(f"slowest KPI computation {slowest:.0f} ms: {verdict} the {TARGET_MS:.0f} ms target")
    return slowest


if __name__ == "__main__":
    main()
