"""Fuzz: ``flagapp-eval`` fed hostile JSON lines (issue 11, deliverable 3).

Each example is one run of the installed console script over a batch of lines: JSON contexts
with lone surrogates, NaN/Infinity, huge numbers, long strings, nesting beyond what the JSON
decoder accepts, plus lines that are not UTF-8 or not JSON. The process must exit 0 or 1
(never a signal, never a traceback), report every bad line on stderr, and write one JSON row
per flag for every good line.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.openfeature_provider.engine.test_cli import _command

from .conftest import PHASES, examples, figures
from .strategies import Recipe, deep_json_text, recipes, rulesets

pytestmark = pytest.mark.fuzz

_BROKEN_LINES = [b"not json\n", b'{"a": "\xff\xfe"}\n', b"[1, 2]\n", b'{"a": 1e99999}\n',
                 b'{"a": ' + b"9" * 5000 + b"}\n", b"\x00\n", b'"\\ud800"\n']  # fmt: skip


def _line(recipe: Recipe) -> bytes:
    base = json.dumps(recipe.base, skipkeys=True, ensure_ascii=True)  # NaN/Infinity as Python
    if recipe.deep is not None:
        attr, depth, container = recipe.deep
        deep = deep_json_text(depth, container)
        base = base[:-1] + ("," if recipe.base else "") + f"{json.dumps(attr)}: {deep}}}"
    return base.encode() + b"\n"


@settings(
    max_examples=examples(15),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    phases=PHASES,
)
@given(
    ruleset=rulesets(),
    contexts=st.lists(recipes(json_only=True), min_size=1, max_size=8),
    broken=st.lists(st.sampled_from(_BROKEN_LINES), max_size=2),
)
def test_fuzz_cli__hostile_lines__every_line_answered_no_crash(
    tmp_path_factory: pytest.TempPathFactory,
    ruleset: dict[str, Any],
    contexts: list[Recipe],
    broken: list[bytes],
) -> None:
    fig = figures("flagapp-eval", "max_run_us")
    path = tmp_path_factory.mktemp("cli") / "ruleset.json"
    path.write_text(json.dumps(ruleset))
    data = b"".join([_line(r) for r in contexts] + broken)
    started = time.perf_counter()
    proc = subprocess.run(
        [*_command(), "--ruleset", str(path), "--explain"],
        input=data,
        capture_output=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode < 0:
        fig.crashes += 1
    assert proc.returncode in (0, 1), proc.stderr.decode("utf-8", "replace")[-3000:]
    # JSON Lines are separated by "\n" only: str.splitlines() would also split inside a
    # value holding U+0085, U+2028, \x1c... (the explain rows quote the context's values)
    lines = [x for x in proc.stderr.decode("utf-8", "replace").split("\n") if x]
    stderr = [line for line in lines if line.startswith("flagapp-eval: line ")]
    warnings = [line for line in lines if line.startswith("flagapp-eval: warning: ")]
    assert len(stderr) + len(warnings) == len(lines), lines[-20:]  # nothing else: no traceback
    rows = [json.loads(line) for line in proc.stdout.decode("utf-8").split("\n") if line]
    good_lines = len(contexts) + len(broken) - len(stderr)
    assert len(rows) == good_lines * len(ruleset["flags"])
    assert (proc.returncode == 1) == bool(stderr)
    for row in rows:
        assert row["errorCode"] != "GENERAL", row
    fig.cases += len(rows)
    # one process per example: the figure is the slowest whole run (start-up included)
    fig.max_seconds = max(fig.max_seconds, elapsed)
