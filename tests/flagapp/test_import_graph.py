"""No module of flagapp sits on an import cycle (issue 12: "0 import cycles"), counting the
package ``__init__`` that importing a submodule runs.

Why a test: a cycle hides behind an in-function import, which no linter flags, and the next
import moved to the top of a module then fails at start-up. The graph is the one
``tests/flagapp/evaluation/test_evaluation_imports.py`` builds from the source: top-level
*and* in-function imports, ``if TYPE_CHECKING:`` blocks excluded (they never run); that
module also checks that the finder can fail.
"""

from __future__ import annotations

import pytest

from tests.flagapp.evaluation.test_evaluation_imports import _cycle_through, _graph


def _with_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Importing ``a.b.c`` runs ``a/b/__init__.py`` first: a module that imports a submodule
    depends on its package too (what re-exports in a package ``__init__`` tie together)."""
    out = {module: set(deps) for module, deps in graph.items()}
    for module, deps in graph.items():
        for dep in deps:
            parts = dep.split(".")
            for i in range(2, len(parts)):
                package = ".".join(parts[:i])
                if package in graph and package != module and not module.startswith(package + "."):
                    out[module].add(package)
    return out


def _watched() -> list[str]:
    return sorted(_graph())


@pytest.mark.parametrize("module", _watched())
def test_import_graph__module__on_no_cycle(module: str) -> None:
    graph = _with_packages(_graph())
    assert module in graph, f"{module} does not exist"
    cycle = _cycle_through(graph, module)
    assert cycle is None, " -> ".join(cycle or [])
