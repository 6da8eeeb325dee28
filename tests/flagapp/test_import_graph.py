"""No module of the rollouts, governance, metrics, waffle-import and flags-as-code code sits
on an import cycle (issue 12: "0 import cycles").

Why a test: a cycle hides behind an in-function import, which no linter flags, and the next
import moved to the top of a module then fails at start-up. The graph is the one
``tests/flagapp/evaluation/test_evaluation_imports.py`` builds from the source: top-level
*and* in-function imports, ``if TYPE_CHECKING:`` blocks excluded (they never run); that
module also checks that the finder can fail.
"""

from __future__ import annotations

import pytest

from tests.flagapp.evaluation.test_evaluation_imports import _cycle_through, _graph

#: Packages whose every module is checked, and single modules.
PACKAGES = ("flagapp.rollouts", "flagapp.governance", "flagapp.metrics", "flagapp.contrib.waffle")
MODULES = ("flagapp.services.code", "flagapp.services.code_format", "flagapp.models.governance")
#: On the cycle flagapp.notifications.delivery <-> flagapp.tasks (delivery enqueues through
#: tasks.deliver_notification, the tasks import delivery): not a cycle of its own, listed in
#: docs/internals.md "Import cycles" until that pair is untangled.
KNOWN = frozenset({"flagapp.governance.reminders"})


def _watched() -> list[str]:
    graph = _graph()
    names = [m for m in graph if any(m == p or m.startswith(p + ".") for p in PACKAGES)]
    return sorted({*names, *MODULES} - KNOWN)


@pytest.mark.parametrize("module", _watched())
def test_import_graph__module__on_no_cycle(module: str) -> None:
    graph = _graph()
    assert module in graph, f"{module} does not exist"
    cycle = _cycle_through(graph, module)
    assert cycle is None, " -> ".join(cycle or [])


def test_import_graph__known_exception__still_on_its_cycle() -> None:
    """When the delivery <-> tasks cycle is gone this fails: then drop KNOWN."""
    graph = _graph()
    for module in KNOWN:
        assert _cycle_through(graph, module) is not None, module
