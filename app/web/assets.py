"""Static files: the app's own (static/) and the npm-installed browser libraries it serves."""

from functools import cache
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

ROOT = Path(__file__).resolve().parent.parent.parent
STATIC_DIR = ROOT / "static"
NODE_MODULES = ROOT / "node_modules"
# URL prefix → folder inside node_modules: only what the pages load, nothing else of npm's tree.
VENDOR = {
    "barcode-detector": "barcode-detector/dist",
    "zxing-wasm": "zxing-wasm/dist",
    "swagger-ui": "swagger-ui-dist",
}
# Where a package's folder holds more than the pages load, only these files of it are served
# (swagger-ui-dist also ships a demo page that loads the Petstore API from the internet).
VENDOR_FILES = {
    "swagger-ui": frozenset({"swagger-ui-bundle.js", "swagger-ui.css"}),
}


class VendorFiles(StaticFiles):
    """A package's folder under /static/vendor/{prefix}, limited to `only` when given."""

    def __init__(self, *, directory: Path, only: frozenset[str] | None = None) -> None:
        super().__init__(directory=directory)
        self.only = only

    async def get_response(self, path: str, scope: Scope) -> Response:
        if self.only is not None and path not in self.only:
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


def vendor_apps() -> dict[str, VendorFiles]:
    """URL path → the files served there, for each installed package."""
    return {
        f"/static/vendor/{prefix}": VendorFiles(
            directory=NODE_MODULES / folder, only=VENDOR_FILES.get(prefix)
        )
        for prefix, folder in VENDOR.items()
        if (NODE_MODULES / folder).is_dir()
    }


@cache
def asset_version(path: str) -> str:
    try:
        return str(int((STATIC_DIR / path).stat().st_mtime))
    except OSError:
        return "0"
