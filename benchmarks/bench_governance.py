"""Governance costs: the blast-radius comparison and the code-reference scan.

* blast radius: ``flagapp.governance.blast_radius.compare`` over N sampled contexts for a
  targeting change (a rule for pro/enterprise users in the US, 10% -> 50% rollout for the
  rest) -- each context is evaluated twice by the engine. The default sample is 1,000
  contexts (``BLAST_RADIUS_SAMPLE``), so the 1,000 row is what a reviewer waits for (plus
  the sample query and two compiles in the Django preview).
* code refs: ``coderefs.scan_paths`` over this repository's own ``flagapp`` and ``tests``
  trees (files/s and ms per scan).

Run: ``python -m benchmarks governance``.
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks._table import print_table
from flagapp.governance import coderefs
from flagapp.governance.blast_radius import compare
from openfeature_provider.engine.types import FORMAT_VERSION

ROOT = Path(__file__).resolve().parent.parent


def _ruleset(on_weight: int, with_rule: bool) -> dict[str, Any]:
    rules = []
    if with_rule:
        rules.append(
            {
                "id": "pro-us",
                "when": [
                    {"attr": "plan", "op": "in", "values": ["enterprise", "pro"]},
                    {"attr": "country", "op": "eq", "values": ["US"]},
                ],
                "serve": {"variant": "on"},
            }
        )
    return {
        "format": FORMAT_VERSION,
        "environment": "production",
        "version": 1,
        "etag": "x",
        "flags": {
            "checkout.new-flow": {
                "kind": "boolean",
                "enabled": True,
                "variants": {"on": True, "off": False},
                "rules": rules,
                "fallthrough": {
                    "rollout": {
                        "weights": [
                            {"variant": "on", "weight": on_weight},
                            {"variant": "off", "weight": 10_000 - on_weight},
                        ]
                    }
                },
                "metadata": {},
            }
        },
        "segments": {},
    }


def _contexts(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(7)
    return [
        {
            "targetingKey": f"user-{i}",
            "plan": rnd.choice(("free", "pro", "enterprise", "team")),
            "country": rnd.choice(("US", "DE", "FR", "GB")),
        }
        for i in range(n)
    ]


def _median_ms(fn: Any, repeats: int = 5) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    before = _ruleset(1000, with_rule=False)
    after = copy.deepcopy(_ruleset(5000, with_rule=True))
    rows = []
    for n in (100, 1_000, 10_000):
        contexts = _contexts(n)
        radius = compare(before, after, "checkout.new-flow", contexts)
        ms = _median_ms(lambda c=contexts: compare(before, after, "checkout.new-flow", c))
        rows.append([n, f"{radius.share:.1%}", ms, ms * 1000 / n])
    print_table(
        "blast radius: compare() of a targeting change (engine, two evaluations per context)",
        ["contexts", "changed", "ms per preview", "us per context"],
        rows,
    )
    scan_rows = []
    for sub in ("flagapp", "tests"):
        files = sum(1 for _ in coderefs._iter_files([ROOT / sub], coderefs.DEFAULT_EXTENSIONS))
        refs = coderefs.scan_paths([ROOT / sub])
        ms = _median_ms(lambda s=sub: coderefs.scan_paths([ROOT / s]), repeats=3)
        scan_rows.append([sub, files, len(refs), ms, files / (ms / 1000) if ms else 0.0])
    print_table(
        "code refs: scan_paths() with the default patterns",
        ["tree", "files", "references", "ms per scan", "files/s"],
        scan_rows,
    )


if __name__ == "__main__":
    main()
