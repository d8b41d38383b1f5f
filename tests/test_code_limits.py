"""Sizes a reader can hold in mind: no module of the package (pages included) over 600
lines and no function over 100, unless it is listed in `EXCEPTIONS` with its reason
(docs/development.md says the same)."""

from __future__ import annotations

import ast
from pathlib import Path

import chatbot

PACKAGE = Path(chatbot.__file__).parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100
# "path" or "path:function" -> why it may be longer. Empty: nothing is.
EXCEPTIONS: dict[str, str] = {}


def _modules() -> list[Path]:
    # ui/ is the package's chatbot/ui (a symbolic link rglob does not follow); the
    # Alembic migrations are generated history, not code a reader follows.
    return sorted(
        path
        for path in [*PACKAGE.rglob("*.py"), *(PACKAGE / "ui").rglob("*.py")]
        if "migrations" not in path.relative_to(PACKAGE).parts
    )


def oversized(path: Path, relative: str) -> list[str]:
    source = path.read_text()
    found = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES and relative not in EXCEPTIONS:
        found.append(f"{relative}: {lines} lines")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES and f"{relative}:{node.name}" not in EXCEPTIONS:
                found.append(f"{relative}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_module_or_function_over_its_limit() -> None:
    found = []
    for path in _modules():
        found += oversized(path, path.relative_to(PACKAGE).as_posix())
    assert not found, "split these (or list them in EXCEPTIONS with a reason):\n" + "\n".join(found)


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    path = tmp_path / "long.py"
    path.write_text(f"def long() -> None:\n{body}\n")
    assert oversized(path, "long.py") == [f"long.py:1 long: {MAX_FUNCTION_LINES + 1} lines"]
