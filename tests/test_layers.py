"""The package's layers, as docs/architecture.md draws them, checked against every import.

Each module of `src/epicme` belongs to one layer; it may import its own layer and those listed as
below it, and nothing else of EpicMe. Imports inside functions count too, and no two modules may
import each other, however indirectly.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "epicme"

# Layer -> the layers it may import (besides itself). Order of the docs: lowest first.
ALLOWED: dict[str, set[str]] = {
    "oauth": set(),
    "cache": set(),
    "config": {"oauth"},
    "storage": {"oauth", "config"},
    "web": {"oauth", "config"},
    "authorization_server": {"oauth", "config", "cache", "storage", "web"},
    "resource_server": {"oauth", "config", "cache", "web"},
    "journal": {"oauth", "config", "cache", "storage"},
    "doctor": {"oauth", "config", "web"},
    # The entry points compose the services and may import anything.
    "entry": {
        "oauth",
        "config",
        "cache",
        "storage",
        "web",
        "authorization_server",
        "resource_server",
        "journal",
        "doctor",
    },
}
ENTRY_MODULES = {
    "epicme.app",
    "epicme.jobs",
    "epicme.cli",
    "epicme.__main__",
    "epicme.operator_errors",
    "epicme.admin",
    "epicme.logs",
    "epicme.metrics_server",
    "epicme.http_protocol",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    if module in ENTRY_MODULES:
        return "entry"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "entry"


def imports_of(path: Path, module: str) -> Iterator[str]:
    """Every EpicMe module `path` imports, wherever the import statement stands."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from epicme import doctor` imports a module; `from epicme.x import name` imports x.
            names = [f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}")] or [base]
        else:
            continue
        yield from (name for name in names if name == "epicme" or name.startswith("epicme."))


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).is_dir() or (PACKAGE / relative).with_suffix(".py").is_file()


def all_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        graph[module] = {name for name in imports_of(path, module) if name != "epicme"}
    return graph


def test_every_import_respects_the_layers() -> None:
    breaches = set()
    for module, imported in all_imports().items():
        for name in imported:
            if layer_of(name) != layer_of(module) and layer_of(name) not in ALLOWED[layer_of(module)]:
                breaches.add((module, name))
    assert breaches == set(), "imports across the layers (docs/architecture.md)"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (module -> modules it imports), as a path, or None."""
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> list[str] | None:
        state[module] = "open"
        for name in sorted(graph.get(module, ())):
            if state.get(name) == "open":
                return [*trail[trail.index(name) :], name]
            if name not in state and (cycle := visit(name, [*trail, name])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(all_imports())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_an_indirect_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_checker_sees_imports_inside_functions() -> None:
    """The walker is not blind: a late import inside a function is found like a top-level one."""
    path = PACKAGE / "app.py"
    found = set(imports_of(path, "epicme.app"))
    assert "epicme.authorization_server.app" in found  # imported inside run(), on purpose
    assert "epicme.config" in found
