"""Engine evaluation cost: the four reference scenarios, flag count and rule count.

S1 flag simply on; S2 a 25% rollout; S3 three string variants 50/25/25; S4 a rule
(plan in [enterprise, pro] AND country eq US -> on) else a 10% rollout. Each figure is the
median over several repeats of the mean cost of ``evaluate()`` over contexts drawn in turn
from 10,000 prebuilt ones (so the hash sees different keys, as in production).

Run: ``python -m benchmarks engine`` (or ``python -m benchmarks.bench_engine``).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks._table import per_call_us, print_table
from openfeature_provider.engine import evaluate, parse_ruleset
from openfeature_provider.engine.types import FORMAT_VERSION, Ruleset

N_CONTEXTS = 10_000
CALLS = 20_000
REPEATS = 7

PLANS = ("free", "pro", "enterprise", "team")
COUNTRIES = ("US", "DE", "FR", "GB", "JP")

BOOL = {"on": True, "off": False}


def _rollout(on: int, total: int = 10_000) -> dict[str, Any]:
    return {
        "rollout": {
            "weights": [
                {"variant": "on", "weight": on},
                {"variant": "off", "weight": total - on},
            ]
        }
    }


def scenario_flags() -> dict[str, dict[str, Any]]:
    return {
        "s1.simply-on": {"kind": "boolean", "enabled": True, "variants": BOOL,
                         "fallthrough": {"variant": "on"}},
        "s2.rollout-25": {"kind": "boolean", "enabled": True, "variants": BOOL,
                          "fallthrough": _rollout(2_500)},
        "s3.three-variants": {
            "kind": "string",
            "enabled": True,
            "variants": {"a": "control", "b": "treatment-1", "c": "treatment-2"},
            "fallthrough": {"rollout": {"weights": [
                {"variant": "a", "weight": 50},
                {"variant": "b", "weight": 25},
                {"variant": "c", "weight": 25},
            ]}},
        },
        "s4.rule-then-rollout": {
            "kind": "boolean",
            "enabled": True,
            "variants": BOOL,
            "rules": [{
                "id": "paid-us",
                "when": [
                    {"attr": "plan", "op": "in", "values": ["enterprise", "pro"]},
                    {"attr": "country", "op": "eq", "values": ["US"]},
                ],
                "serve": {"variant": "on"},
            }],
            "fallthrough": _rollout(1_000),
        },
    }  # fmt: skip


def ruleset(flags: dict[str, Any]) -> Ruleset:
    return parse_ruleset(
        {"format": FORMAT_VERSION, "environment": "bench", "version": 1, "flags": flags}
    )


def contexts(seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [
        {
            "targetingKey": f"user-{rnd.getrandbits(48):012x}",
            "plan": rnd.choice(PLANS),
            "country": rnd.choice(COUNTRIES),
        }
        for _ in range(N_CONTEXTS)
    ]


def _cycler(rs: Ruleset, key: str, ctxs: list[dict[str, Any]]) -> Callable[[], object]:
    """A zero-argument call evaluating ``key`` for the next context each time."""
    state = [0]
    n = len(ctxs)

    def call() -> object:
        i = state[0]
        state[0] = i + 1 if i + 1 < n else 0
        return evaluate(rs, key, ctxs[i])

    return call


def _baseline(ctxs: list[dict[str, Any]]) -> float:
    """Cost of the harness itself (cycling contexts), subtracted from nothing: shown apart."""
    state = [0]
    n = len(ctxs)

    def call() -> object:
        i = state[0]
        state[0] = i + 1 if i + 1 < n else 0
        return ctxs[i]

    return per_call_us(call, calls=CALLS, repeats=REPEATS)


def _wall_and_cpu(fn: Callable[[], object]) -> tuple[float, float, float]:
    """Wall-clock median (the headline figure), wall best, and CPU-time median, in us/call.

    On a shared machine the wall median carries the neighbours' load; the process CPU time
    (``time.process_time``) only counts this process's own work, so it stays close to the
    code's own cost while the machine is busy. All three are printed.
    """
    wall, cpu = [], []
    for _ in range(REPEATS):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(CALLS):
            fn()
        cpu.append((time.process_time() - start_cpu) / CALLS * 1e6)
        wall.append((time.perf_counter() - start) / CALLS * 1e6)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def _filler(i: int) -> dict[str, Any]:
    """A realistic other flag, so big rulesets are not all identical objects."""
    return {
        "kind": "boolean",
        "enabled": True,
        "variants": BOOL,
        "rules": [{"id": "r", "when": [{"attr": "plan", "op": "eq", "values": [f"p{i}"]}],
                   "serve": {"variant": "on"}}],
        "fallthrough": _rollout(i % 10_000),
    }  # fmt: skip


def _rules_flag(n_rules: int) -> dict[str, Any]:
    """``n_rules`` rules; only the last one matches the bench contexts (plan pro, US)."""
    rules = [
        {
            "id": f"miss-{i}",
            "when": [
                {"attr": "plan", "op": "in", "values": [f"nobody-{i}", "nobody"]},
                {"attr": "country", "op": "eq", "values": ["US"]},
            ],
            "serve": {"variant": "off"},
        }
        for i in range(n_rules - 1)
    ]
    rules.append(
        {
            "id": "deciding",
            "when": [
                {"attr": "plan", "op": "in", "values": ["pro", "enterprise"]},
                {"attr": "country", "op": "eq", "values": ["US"]},
            ],
            "serve": {"variant": "on"},
        }
    )
    return {
        "kind": "boolean",
        "enabled": True,
        "variants": BOOL,
        "rules": rules,
        "fallthrough": {"variant": "off"},
    }


def main() -> None:
    ctxs = contexts()
    flags = scenario_flags()
    rs = ruleset(flags)
    rows: list[list[object]] = []
    for key in flags:
        rows.append([key, *_wall_and_cpu(_cycler(rs, key, ctxs))])
    rows.append(["(harness: next context only)", _baseline(ctxs), "-", "-"])
    print_table(
        "engine: evaluate() per scenario (target <= 3 us)",
        ["scenario", "us/eval (median)", "us/eval (best)", "cpu us/eval (median)"],
        rows,
    )

    rows = []
    for n in (10, 1_000, 10_000):
        many = {f"filler.{i}": _filler(i) for i in range(n - 4)}
        many.update(flags)
        start = time.perf_counter()
        big = ruleset(many)
        parse_ms = (time.perf_counter() - start) * 1e3
        rows.append(
            [
                n,
                parse_ms,
                per_call_us(_cycler(big, "s2.rollout-25", ctxs), calls=CALLS, repeats=REPEATS),
                per_call_us(
                    _cycler(big, "s4.rule-then-rollout", ctxs), calls=CALLS, repeats=REPEATS
                ),
            ]
        )
    print_table(
        "engine: cost vs number of flags in the ruleset",
        ["flags", "parse+compile ms", "S2 us/eval", "S4 us/eval"],
        rows,
    )

    matching = [dict(c, plan="pro", country="US") for c in ctxs]
    rows = []
    for n in (1, 10, 100):
        rs_rules = ruleset({"rules.flag": _rules_flag(n)})
        cost = per_call_us(
            _cycler(rs_rules, "rules.flag", matching), calls=CALLS // 4, repeats=REPEATS
        )
        rows.append([n, cost, cost / n])
    print_table(
        "engine: cost vs number of rules of one flag (the deciding rule last)",
        ["rules", "us/eval", "us/rule"],
        rows,
    )


if __name__ == "__main__":
    main()
