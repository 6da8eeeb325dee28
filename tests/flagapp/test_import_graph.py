"""No module of flagapp sits on an import cycle (issue 12: "0 import cycles").

Why a test: a cycle hides behind an in-function import, which no linter flags, and the next
import moved to the top of a module then fails at start-up. The graph is the one
``tests/flagapp/evaluation/test_evaluation_imports.py`` builds from the source: top-level
*and* in-function imports, ``if TYPE_CHECKING:`` blocks excluded (they never run); that
module also checks that the finder can fail.
"""

from __future__ import annotations

import pytest

from tests.flagapp.evaluation.test_evaluation_imports import _cycle_through, _graph


def _watched() -> list[str]:
    return sorted(_graph())


@pytest.mark.parametrize("module", _watched())
def test_import_graph__module__on_no_cycle(module: str) -> None:
    graph = _graph()
    assert module in graph, f"{module} does not exist"
    cycle = _cycle_through(graph, module)
    assert cycle is None, " -> ".join(cycle or [])
