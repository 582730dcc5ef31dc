"""The store's one convention, checked on every function: who owns the transaction is visible in
the first parameter. `db: Database` — the function opens its own (`db.read()` / `db.write()`),
so a caller cannot make it part of a larger one; `conn: AsyncConnection` — it runs in the caller's,
which commits or rolls back everything together (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

STORAGE = Path(__file__).resolve().parents[2] / "src" / "epicme" / "storage"
# The engine itself and the schema's versioning manage transactions by definition.
NOT_RECORDS = {"database.py", "migrations.py", "schema.py", "__init__.py"}


def record_functions() -> list[tuple[str, ast.AsyncFunctionDef]]:
    found = []
    for path in sorted(STORAGE.glob("*.py")):
        if path.name in NOT_RECORDS:
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.AsyncFunctionDef) and not node.name.startswith("_"):
                found.append((f"{path.stem}.{node.name}", node))
    return found


def opens_a_transaction(function: ast.AsyncFunctionDef) -> bool:
    return any(
        isinstance(node, ast.Attribute) and node.attr in ("read", "write") and isinstance(node.value, ast.Name)
        for node in ast.walk(function)
    )


def test_every_store_function_says_who_owns_the_transaction() -> None:
    functions = record_functions()
    assert len(functions) > 20  # the walk found the modules
    for name, function in functions:
        first = function.args.args[0] if function.args.args else None
        assert first is not None and first.annotation is not None, name
        kind = (first.arg, ast.unparse(first.annotation))
        assert kind in {("db", "Database"), ("conn", "AsyncConnection")}, f"{name} takes {kind}"
        if first.arg == "conn":
            assert not opens_a_transaction(function), f"{name} runs in the caller's transaction: it may not open one"
        else:
            assert opens_a_transaction(function), f"{name} takes the Database: it opens its own transaction"
