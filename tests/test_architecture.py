"""The code's layers, kept: imports point one way and never in a circle.

ground (config, db, errors, clock, …) ← domain packages (models, schemas, services, pure
modules) ← HTTP surfaces (each domain's router.py and dependencies.py, the stamp's direct way,
the pages in app/web) ← entry points (main, cli, demo, the table registry). Every import counts,
also one inside a function: a lazy import hides a cycle, it does not remove it.
"""

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"

GROUND = {
    "app.config", "app.db", "app.errors", "app.clock", "app.process", "app.limits",
    "app.migrations", "app.dependencies", "app.ratelimit", "app.inputs",
}  # fmt: skip
ENTRY = {"app", "app.main", "app.cli", "app.demo", "app.models", "app.maintenance"}
# Modules of a domain package that speak HTTP.
SURFACE_NAMES = {"router", "dependencies", "direct", "auth"}
LAYERS = {"ground": 0, "domain": 1, "surface": 2, "entry": 3}
# What a domain's plain modules (services, models, pure logic) may not import: they are called
# from routes, pages, the CLI and the ledger writer alike.
WEB_FRAMEWORKS = ("fastapi", "starlette")


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    if module in GROUND:
        return "ground"
    if module in ENTRY:
        return "entry"
    parts = module.split(".")
    if parts[1] == "web" or parts[-1] in SURFACE_NAMES:
        return "surface"
    return "domain"


def imports(path: Path, known: set[str]) -> set[str]:
    """The app modules this file imports, anywhere in it (`from app.x import y` counts y when y
    is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module not in known:
                continue
            submodules = {f"{node.module}.{a.name}" for a in node.names} & known
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(node.module)
    return found


def third_party(path: Path) -> set[str]:
    tops: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            tops.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            tops.add(node.module.split(".")[0])
    return tops


FILES = {module_name(p): p for p in sorted(APP.rglob("*.py"))}
GRAPH = {name: imports(path, set(FILES)) - {name} for name, path in FILES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checks_see_the_modules() -> None:
    # The walk must find the app and its imports, or every other check here passes vacuously.
    assert len(FILES) > 60
    assert "app.ledger.service" in GRAPH["app.ledger.writer"]
    assert layer("app.ledger.router") == "surface" and layer("app.ledger.service") == "domain"


def test_no_module_imports_in_a_circle() -> None:
    assert cycles(GRAPH) == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{module} ({layer(module)}) imports {target} ({layer(target)})"
        for module, targets in GRAPH.items()
        for target in sorted(targets)
        if LAYERS[layer(target)] > LAYERS[layer(module)]
    ]
    assert upward == []


def test_domain_modules_do_not_speak_http() -> None:
    speaking = [
        f"{module} imports {top}"
        for module, path in FILES.items()
        if layer(module) == "domain"
        for top in sorted(third_party(path) & set(WEB_FRAMEWORKS))
    ]
    assert speaking == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set(), "c": {"a"}}, []),
    ],
)
def test_a_cycle_is_found(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected


def test_an_upward_import_is_named() -> None:
    assert LAYERS[layer("app.web.customer")] > LAYERS[layer("app.errors")]
    assert layer("app.ledger.direct") == "surface" and layer("app.main") == "entry"
