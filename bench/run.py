"""`make bench`: one real `treu serve`, measured with wrk in one run, reported as ratios.

The ceiling is the same server's `GET /healthz` (no database, no crypto); every other figure is
given as requests/s and as a share of that ceiling, so the numbers compare across machines.
Set TREU_BENCH_DATABASE_URL to measure PostgreSQL instead of the embedded SQLite.
"""

import json
import os
import re
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
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
CARDS = int(os.environ.get("BENCH_CARDS", "1000"))


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


def wrk(url: str, script: str, env: dict[str, str]) -> Figure:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency", "-s", script, url],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = float(re.search(r"p50_ms=([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = float(re.search(r"p99_ms=([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    return Figure(url.rsplit("/", 1)[-1] or "/", rps, p50, p99, errors)


def wait_ready(url: str) -> None:
    for _ in range(200):
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    sys.exit(f"{url} did not come up")


def serve(args: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(ready)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="treu-bench-"))
    env = {**os.environ, "TREU_DATA_DIR": str(data)}
    env.pop("TREU_DATABASE_URL", None)
    db_url = os.environ.get("TREU_BENCH_DATABASE_URL")
    if db_url:
        env["TREU_DATABASE_URL"] = db_url
    treu(env, "init")
    # No cooldown, so a card can be stamped again within the run.
    create = ["merchant", "create", "--name", "Bench Café", "--stamps-required", "10"]
    options = ["--reward", "a coffee", "--cooldown-seconds", "0", "--json"]
    merchant = json.loads(treu(env, *create, *options))
    device = json.loads(treu(env, "device", "create", "--merchant", merchant["slug"], "--json"))
    get = str(HERE / "get.lua")

    port = free_port()
    ceiling_app = serve(
        [sys.executable, str(HERE / "ceiling.py"), str(port)], env, f"http://127.0.0.1:{port}/"
    )
    try:
        ceiling = wrk(f"http://127.0.0.1:{port}/", get, env)
        ceiling.name = "bare FastAPI (ceiling)"
    finally:
        stop(ceiling_app)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(
        [TREU, "serve", "--host", "127.0.0.1", "--port", str(port)], env, base + "/healthz"
    )
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            tokens = [client.post("/api/v1/cards").json()["token"] for _ in range(CARDS)]
        cards_file = data / "cards.txt"
        cards_file.write_text("\n".join(tokens) + "\n")
        wrk_env = {**env, "BENCH_CARDS": str(cards_file), "BENCH_SECRET": device["secret"]}
        health = wrk(f"{base}/healthz", get, wrk_env)
        health.name = "GET /healthz"
        stamp = wrk(f"{base}/api/v1/stamps", str(HERE / "stamp.lua"), wrk_env)
        stamp.name = "POST /api/v1/stamps"
        card = wrk(f"{base}/api/v1/cards/{tokens[0]}", get, wrk_env)
        card.name = "GET /api/v1/cards/{token}"
    finally:
        stop(server)

    store = "PostgreSQL" if db_url else "SQLite"
    print(f"treu bench: one uvicorn worker each, {store}, wrk -t2 -c{CONNECTIONS} -d{DURATION}")
    print(f"stamps spread over {CARDS} cards; ratio = requests/s / bare FastAPI requests/s")
    print(f"{'route':<28}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for f in (ceiling, health, stamp, card):
        print(
            f"{f.name:<28}{f.rps:>10.0f}{f.rps / ceiling.rps:>8.2f}"
            f"{f.p50_ms:>9.2f}{f.p99_ms:>9.2f}{f.errors:>9}"
        )
    if stamp.errors:
        sys.exit("stamp requests failed during the run")


if __name__ == "__main__":
    main()
