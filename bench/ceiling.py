"""The framework's ceiling on this machine: one `async def` endpoint returning a constant.

Served by the very function that serves `treu serve` (app.cli.run_server): the same uvicorn
protocol and event loop, one worker, no access log, the same headers. Only the app differs.
"""

import sys

from fastapi import FastAPI

from app.cli import run_server

app = FastAPI()


@app.get("/")
async def constant() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    run_server(app, "127.0.0.1", int(sys.argv[1]))
