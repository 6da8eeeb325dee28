"""Import structure of the evaluation package and the SDK notifier (issue 12 item 3).

Why a test: the cycles context ↔ evaluation and sdk.keys ↔ sdk.notifier hid behind
in-function imports, which no linter flags. This builds flagapp's module import graph from
the source (top-level *and* in-function imports; ``if TYPE_CHECKING:`` blocks excluded, they
never run) and checks that none of these modules sits on a cycle.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "flagapp"

WATCHED = (
    "flagapp.context",
    "flagapp.evaluation",
    "flagapp.evaluation.api",
    "flagapp.evaluation.cache",
    "flagapp.evaluation.context",
    "flagapp.evaluation.details",
    "flagapp.evaluation.overrides",
    "flagapp.sdk.keys",
    "flagapp.sdk.notifier",
)


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from pkg import mod`` depends on pkg.mod; ``from pkg import name`` on pkg.
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in modules else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in modules and m != name}


@functools.cache
def _graph() -> dict[str, set[str]]:
    paths = [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start, or None."""
    stack: list[tuple[str, list[str]]] = [(dep, [start, dep]) for dep in graph.get(start, ())]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        if node == start:
            return path
        if node in seen:
            continue
        seen.add(node)
        stack.extend((dep, [*path, dep]) for dep in graph.get(node, ()))
    return None


@pytest.mark.parametrize("module", WATCHED)
def test_import_graph__evaluation_and_notifier_modules__on_no_cycle(module: str) -> None:
    graph = _graph()
    assert module in graph, f"{module} does not exist"
    cycle = _cycle_through(graph, module)
    assert cycle is None, " -> ".join(cycle or [])


def test_import_graph__finder__sees_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    """The finder itself must be able to fail: a lazy import closing a loop is a cycle, an
    import under ``if TYPE_CHECKING:`` is none."""
    graph = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert _cycle_through(graph, "a") == ["a", "b", "a"]
    assert _cycle_through(graph, "c") is None
    module = tmp_path / "flagapp" / "m.py"
    module.parent.mkdir()
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import flagapp.t\n"
        "def f():\n    from . import x\n    from .y import name\n"
    )
    modules = {"flagapp.m", "flagapp.x", "flagapp.y", "flagapp.t", "flagapp"}
    assert _imports(module, modules, root=tmp_path) == {"flagapp.x", "flagapp.y"}
