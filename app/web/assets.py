"""Static files: the app's own (static/) and the npm-installed browser libraries it serves."""

from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
STATIC_DIR = ROOT / "static"
NODE_MODULES = ROOT / "node_modules"
# URL prefix → folder inside node_modules: only what the pages load, nothing else of npm's tree.
VENDOR = {
    "barcode-detector": "barcode-detector/dist",
    "zxing-wasm": "zxing-wasm/dist",
}


@cache
def asset_version(path: str) -> str:
    try:
        return str(int((STATIC_DIR / path).stat().st_mtime))
    except OSError:
        return "0"
