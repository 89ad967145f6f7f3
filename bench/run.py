"""`make bench`: a real `treu serve` and the framework's ceiling, measured with wrk in one run.

The ceiling is a bare FastAPI app with one `async def` endpoint returning a constant
(bench/ceiling.py), served exactly as `treu serve` serves treu. It is measured before and after
treu and averaged, and every figure is given as requests/s and as a share of it, so the numbers
compare across machines. Stamps are POST /api/v1/stamps over BENCH_CARDS cards with a fresh
Idempotency-Key each (a program without cooldown, so every stamp is written).

Set TREU_BENCH_DATABASE_URL to measure PostgreSQL instead of the embedded SQLite.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
TREU = str(Path(sys.executable).with_name("treu"))
DURATION = os.environ.get("BENCH_DURATION", "10s")
WARMUP = "2s"
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
CARDS = int(os.environ.get("BENCH_CARDS", "1000"))
# What the stamp must reach, as a share of the ceiling, with its p99 latency.
TARGET_RATIO, AIM_RATIO, TARGET_P99_MS = 0.35, 0.45, 25.0


@dataclass
class Figure:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def treu(env: dict[str, str], *args: str) -> str:
    return subprocess.run([TREU, *args], env=env, check=True, capture_output=True, text=True).stdout


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    if found is None:
        sys.exit(f"unexpected wrk output:\n{text}")
    return float(found.group(1))


def wrk(name: str, url: str, script: str, env: dict[str, str], duration: str = DURATION) -> Figure:
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}", "--latency", "-s", script, url]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    # Non-2xx answers and socket errors (connect, read, write, timeout) all count as errors.
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    for counts in re.findall(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(map(int, counts))
    return Figure(
        name,
        _number(r"Requests/sec:\s+([\d.]+)", out),
        _number(r"p50_ms=([\d.]+)", out),
        _number(r"p99_ms=([\d.]+)", out),
        errors,
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    sys.exit(f"{url} did not come up")


def serve(args: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(ready, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def ceiling(env: dict[str, str]) -> Figure:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    app = serve([sys.executable, str(HERE / "ceiling.py"), str(port)], env, url)
    try:
        wrk("warm-up", url, str(HERE / "get.lua"), env, WARMUP)
        return wrk("bare FastAPI (ceiling)", url, str(HERE / "get.lua"), env)
    finally:
        stop(app)


def measure_treu(env: dict[str, str], data: Path) -> list[Figure]:
    # No cooldown, so a card can be stamped again within the run.
    create = ["merchant", "create", "--name", "Bench Café", "--stamps-required", "10"]
    options = ["--reward", "a coffee", "--cooldown-seconds", "0", "--json"]
    merchant = json.loads(treu(env, *create, *options))
    device = json.loads(treu(env, "device", "create", "--merchant", merchant["slug"], "--json"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve([TREU, "serve", "--port", str(port)], env, base + "/healthz")
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            tokens = [client.post("/api/v1/cards").json()["token"] for _ in range(CARDS)]
        cards_file = data / "cards.txt"
        cards_file.write_text("\n".join(tokens) + "\n")
        wrk_env = {**env, "BENCH_CARDS": str(cards_file), "BENCH_SECRET": device["secret"]}
        get, stamp = str(HERE / "get.lua"), str(HERE / "stamp.lua")
        wrk("warm-up", f"{base}/api/v1/stamps", stamp, wrk_env, WARMUP)
        return [
            wrk("GET /healthz", f"{base}/healthz", get, wrk_env),
            wrk("POST /api/v1/stamps", f"{base}/api/v1/stamps", stamp, wrk_env),
            wrk("GET /api/v1/cards/{token}", f"{base}/api/v1/cards/{tokens[0]}", get, wrk_env),
        ]
    finally:
        stop(server)


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("make bench needs wrk (apt-get install wrk, brew install wrk)")
    data = Path(tempfile.mkdtemp(prefix="treu-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREU_")}
    env["TREU_DATA_DIR"] = str(data)
    db_url = os.environ.get("TREU_BENCH_DATABASE_URL")
    if db_url:
        env["TREU_DATABASE_URL"] = db_url
    try:
        treu(env, "init")
        before = ceiling(env)
        figures = measure_treu(env, data)
        after = ceiling(env)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    top = Figure(
        "bare FastAPI (ceiling)",
        (before.rps + after.rps) / 2,
        (before.p50_ms + after.p50_ms) / 2,
        (before.p99_ms + after.p99_ms) / 2,
        before.errors + after.errors,
    )
    report(top, before, after, figures, "PostgreSQL" if db_url else "SQLite")
    if any(f.errors for f in figures):
        sys.exit("requests failed during the run")


def report(top: Figure, before: Figure, after: Figure, figures: list[Figure], store: str) -> None:
    print(
        f"treu bench: {store}, one uvicorn worker per server, {os.cpu_count()} CPUs, "
        f"wrk -t2 -c{CONNECTIONS} -d{DURATION}"
    )
    print(
        f"ceiling {before.rps:.0f} req/s before treu, {after.rps:.0f} after; "
        f"stamps spread over {CARDS} cards; ratio = req/s / ceiling req/s"
    )
    print(f"{'route':<28}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>9}")
    for f in (top, *figures):
        print(
            f"{f.name:<28}{f.rps:>10.0f}{f.rps / top.rps:>8.2f}"
            f"{f.p50_ms:>9.2f}{f.p99_ms:>9.2f}{f.errors:>9}"
        )
    stamp = next(f for f in figures if f.name.startswith("POST /api/v1/stamps"))
    ratio = stamp.rps / top.rps
    met = ratio >= TARGET_RATIO and stamp.p99_ms <= TARGET_P99_MS
    print(
        f"stamps: {ratio:.2f} x ceiling, p99 {stamp.p99_ms:.1f} ms "
        f"(target >= {TARGET_RATIO} x with p99 <= {TARGET_P99_MS:.0f} ms, aim {AIM_RATIO} x): "
        + ("target met" if met else "BELOW TARGET")
    )


if __name__ == "__main__":
    main()
