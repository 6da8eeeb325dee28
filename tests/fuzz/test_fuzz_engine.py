"""Fuzz: hostile contexts x generated rulesets (every operator), evaluated in a subprocess.

Issue 11, deliverable 3. Every evaluation must return a ``Resolution`` (never raise, never
GENERAL, which means an exception was caught) and the evaluating process must survive: a
segfault or a hang is reported with the example that caused it. Figures (evaluations, the
slowest one, crashes) are printed at the end of the run (conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import PHASES, examples, figures
from .strategies import Recipe, recipes, rulesets
from .worker import EngineWorker, WorkerDied

pytestmark = pytest.mark.fuzz


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
    database=None,
    phases=PHASES,
)  # fmt: skip
@given(ruleset=rulesets(), contexts=st.lists(recipes(), min_size=1, max_size=6))
def test_fuzz_engine__hostile_contexts__resolution_every_time_no_crash(
    engine_worker: EngineWorker, ruleset: dict[str, Any], contexts: list[Recipe]
) -> None:
    fig = figures("engine")
    try:
        answer = engine_worker.run({"ruleset": ruleset, "recipes": contexts}, timeout=60)
    except WorkerDied:
        fig.crashes += 1
        raise
    fig.cases += answer["cases"]
    fig.max_seconds = max(fig.max_seconds, answer["worst"])
    assert answer["problems"] == []
