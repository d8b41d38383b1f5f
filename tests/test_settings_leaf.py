"""Settings as a leaf: `chatbot.config` reads configuration and imports no feature
package; only entry points take the assembled `Settings`, everything below them takes
its own section or `DataPaths`."""

from __future__ import annotations

import ast
from pathlib import Path

import chatbot

PACKAGE = Path(chatbot.__file__).parent
# The entry points: they build `Settings` and hand each layer its own part.
ENTRY_POINTS = ("cli/", "settings.py", "app.py", "web/services.py", "jobs/", "bootstrap.py")


def _modules() -> list[Path]:
    # ui/ is the package's chatbot/ui (a symbolic link rglob does not follow).
    return sorted([*PACKAGE.rglob("*.py"), *(PACKAGE / "ui").rglob("*.py")])


def _takes_settings(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
    for argument in arguments:
        if argument.annotation is None:
            continue
        names = {part.strip().strip("\"'") for part in ast.unparse(argument.annotation).split("|")}
        if "Settings" in names:
            return True
    return False


def test_config_imports_no_feature_package() -> None:
    tree = ast.parse((PACKAGE / "config.py").read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chatbot")
    }
    assert imported <= {"chatbot.errors"}, imported


def test_only_entry_points_take_the_whole_settings() -> None:
    offenders = []
    for path in _modules():
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(ENTRY_POINTS):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _takes_settings(node):
                offenders.append(f"{relative}:{node.lineno} {node.name}")
    assert not offenders, "take a section or DataPaths instead:\n" + "\n".join(offenders)


def test_the_check_sees_a_function_taking_settings(tmp_path: Path) -> None:
    tree = ast.parse("def build(settings: 'Settings | None', x: int) -> None: ...")
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    assert _takes_settings(function)
