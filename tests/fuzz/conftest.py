"""Fuzz suite configuration: example counts, the figures line, the engine worker.

``FLAGAPP_FUZZ_EXAMPLES`` scales every fuzz test (default 1 = the CI budget, about a minute
on two cores for the whole folder; e.g. 20 for a long local run). At the end of the session
one line per surface is printed: ``fuzz figures: engine cases=... max_eval_us=... crashes=0``
(engine: evaluations and the slowest one, CPU time measured inside the evaluating process;
flagapp-eval: output rows, and the slowest whole run, process start-up included;
ofrep: requests, the slowest request and the statuses seen).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import Phase

from .worker import EngineWorker

SCALE = max(1, int(os.environ.get("FLAGAPP_FUZZ_EXAMPLES", "1") or 1))
#: Shrinking re-runs a failing example hundreds of times through a subprocess (minutes); it
#: is off unless FLAGAPP_FUZZ_SHRINK=1, so a failure reports the example as generated.
SHRINK = os.environ.get("FLAGAPP_FUZZ_SHRINK") == "1"
PHASES = tuple(p for p in Phase if p is not Phase.explain and (SHRINK or p is not Phase.shrink))


def examples(base: int) -> int:
    """Hypothesis examples for a test whose CI budget is ``base`` examples."""
    return base * SCALE


@dataclass
class Figures:
    metric: str = "max_eval_us"
    cases: int = 0
    max_seconds: float = 0.0
    crashes: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


FIGURES: dict[str, Figures] = {}


def figures(surface: str, metric: str = "max_eval_us") -> Figures:
    """The counters of one surface; ``metric`` names what ``max_seconds`` measures."""
    return FIGURES.setdefault(surface, Figures(metric))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for surface, fig in FIGURES.items():
        statuses = ""
        if fig.statuses:
            statuses = " statuses=" + ",".join(f"{k}:{v}" for k, v in sorted(fig.statuses.items()))
        terminalreporter.write_line(
            f"fuzz figures: {surface} cases={fig.cases} "
            f"{fig.metric}={fig.max_seconds * 1e6:.1f} crashes={fig.crashes}{statuses} "
            f"(FLAGAPP_FUZZ_EXAMPLES={SCALE})"
        )


@pytest.fixture(scope="session")
def engine_worker() -> Iterator[EngineWorker]:
    worker = EngineWorker()
    yield worker
    worker.close()
