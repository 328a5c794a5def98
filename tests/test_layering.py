"""The import rules of docs/architecture.md, read from the source with `ast`.

Every import counts, function-local ones included: a cycle hidden in a function
is still a cycle.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pounce_sync", "async_pool")

GROUND = ("pounce_sync.http1", "pounce_sync.asgi", "pounce_sync.config", "pounce_sync.version")
OBSERVE = ("pounce_sync.observe",)
# What each floor may import (prefixes), besides the standard library and third parties.
# "async_pool" alone means the package's entry (its __init__), never its modules.
ALLOWED: dict[str, tuple[str, ...]] = {
    "pounce_sync.http1": ("pounce_sync.http1",),
    "pounce_sync.asgi": ("pounce_sync.asgi", "pounce_sync.http1"),
    "pounce_sync.config": GROUND,
    "pounce_sync.version": (),
    "async_pool": (*GROUND, "async_pool."),
    "pounce_sync.observe": (*GROUND, *OBSERVE),
    "pounce_sync.sources": (*GROUND, "pounce_sync.sources"),
    "pounce_sync.worker": (*GROUND, *OBSERVE, "pounce_sync.worker", "async_pool"),
    "pounce_sync.server": (
        *GROUND,
        *OBSERVE,
        "pounce_sync.worker",
        "pounce_sync.server",
        "async_pool",
    ),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{a.name}" for a in node.names} & MODULES.keys()
            # `from package import module` depends on the module, not on the package.
            found.update(submodules if len(submodules) == len(node.names) else {target})
    return {f for f in found if f.split(".")[0] in PACKAGES}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _floor(name: str) -> str | None:
    return next((floor for floor in ALLOWED if name == floor or name.startswith(floor + ".")), None)


def _allowed(target: str, prefixes: tuple[str, ...]) -> bool:
    for prefix in prefixes:
        if prefix == "async_pool":
            if target == "async_pool":
                return True
        elif prefix.endswith("."):
            if target.startswith(prefix) or target == prefix[:-1]:
                return True
        elif target == prefix or target.startswith(prefix + "."):
            return True
    return False


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _floor(n) is not None))
def test_each_floor_imports_only_what_is_below_it(name: str) -> None:
    floor = _floor(name)
    assert floor is not None
    wrong = sorted(t for t in GRAPH[name] if not _allowed(t, ALLOWED[floor]))
    assert not wrong, f"{name} ({floor}) may not import {wrong}"


def test_there_is_no_import_cycle() -> None:
    """Depth-first search for a back edge; reports one cycle with its modules in order."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for target in sorted(GRAPH.get(name, ())):
            if target not in GRAPH:
                continue
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[name] = 2
        return None

    for name in sorted(GRAPH):
        if name not in state and (cycle := visit(name)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_every_module_is_on_a_floor_or_an_entry_point() -> None:
    """New modules go in a room; only the entry points sit at the top of the package."""
    top = {
        "pounce_sync",
        "pounce_sync.__main__",
        "pounce_sync.cli",
        "pounce_sync.uvicorn_flags",
        "pounce_sync.settings_doc",
        "pounce_sync.gunicorn",
    }
    loose = sorted(n for n in MODULES if _floor(n) is None and n not in top)
    assert all(n.startswith("pounce_sync.bench") for n in loose), loose
