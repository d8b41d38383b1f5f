"""The layout of search, index building and the intent benchmark, read from the source
with `ast` (nothing imported): the modules of `chatbot.retrieval`, `chatbot.indexing`
and `chatbot.evaluation.intents` import each other without a circle, serving search
never imports index building or the benchmark, every import among them is at the top
of its module (none hidden in a function to dodge a circle), and no private name
crosses a module boundary."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("chatbot/retrieval", "chatbot/indexing", "chatbot/evaluation/intents")
# Modules outside the packages that they share (records, meta.json reading, embedder loading).
SHARED = ("chatbot.pairs", "chatbot.meta_file", "chatbot.models.embedder")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    found = {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    for name in SHARED:
        found[name] = ROOT / (name.replace(".", "/") + ".py")
    return found


def imported(tree: ast.Module, known: set[str]) -> list[tuple[str, list[str], bool]]:
    """(module, names, at module level) of each import of a known module; `from
    chatbot.retrieval import faiss_index` counts as an import of that submodule."""
    top_level = {id(node) for node in tree.body}
    type_checking = {
        id(inner)
        for node in tree.body
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in node.body
    }
    out = []
    for node in ast.walk(tree):
        at_top = id(node) in top_level or id(node) in type_checking
        if isinstance(node, ast.Import):
            out += [(a.name, [], at_top) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [a.name for a in node.names]
            submodules = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in known]
            if submodules:
                out += [(m, [], at_top) for m in submodules]
            elif node.module in known:
                out.append((node.module, names, at_top))
    return out


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {
        name: {m for m, _, _ in imported(ast.parse(path.read_text()), set(modules)) if m != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports as a list of module names, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_packages_import_each_other_without_a_circle():
    graph = import_graph()
    assert "chatbot.indexing.builder" in graph and "chatbot.retrieval.retriever" in graph
    assert find_cycle(graph) is None


def test_serving_search_imports_neither_index_building_nor_the_benchmark():
    for name, targets in import_graph().items():
        if name.startswith("chatbot.retrieval"):
            assert not [
                t for t in targets if t.startswith(("chatbot.indexing", "chatbot.evaluation"))
            ], name


@pytest.mark.parametrize("name", sorted(project_modules()))
def test_imports_among_the_packages_are_at_the_top_and_public(name):
    modules = project_modules()
    tree = ast.parse(modules[name].read_text())
    for module, names, at_top in imported(tree, set(modules)):
        assert at_top, f"{name} imports {module} inside a function"
        private = [n for n in names if n.startswith("_")]
        assert not private, f"{name} imports the private {private} from {module}"
