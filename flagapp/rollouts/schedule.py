"""Rollout steps and how a percentage becomes a ruleset ``serve``.

Percentages are integer basis points (10,000 = 100%), the unit of the engine's flagd
compatible bucketing. The treatment variant is always listed FIRST in the weights, so it owns
the hash range ``[0, p)``; raising ``p`` only ever adds users, which is what makes "users who
already have the new variant keep it" true as the rollout grows (docs/bucketing.md).
The salt is fixed for the life of a plan for the same reason.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "DEFAULT_STEPS",
    "TOTAL_WEIGHT",
    "ScheduleKind",
    "build_steps",
    "format_bps",
    "linear_steps",
    "rollout_serve",
    "s_curve_steps",
    "validate_steps",
]

TOTAL_WEIGHT: Final = 10_000
#: The issue's default: 1%, 10%, 50%, 100%.
DEFAULT_STEPS: Final[tuple[int, ...]] = (100, 1_000, 5_000, 10_000)


class ScheduleKind(StrEnum):
    STEPS = "steps"  # the explicit list (default 1/10/50/100%)
    LINEAR = "linear"  # equal increments from the first step to 100%
    S_CURVE = "s_curve"  # slow start, fast middle, careful end (logistic)


def validate_steps(steps: Sequence[int]) -> list[str]:
    """Problems with a step list, as messages (empty list = valid)."""
    errors: list[str] = []
    if not steps:
        return ["at least one step is needed"]
    for i, step in enumerate(steps):
        if isinstance(step, bool) or not isinstance(step, int):
            errors.append(f"step {i + 1} must be an integer number of basis points")
        elif not 0 < step <= TOTAL_WEIGHT:
            errors.append(f"step {i + 1} must be in 1..{TOTAL_WEIGHT} basis points")
    if errors:
        return errors
    if any(b <= a for a, b in itertools.pairwise(steps)):
        errors.append("steps must strictly increase")
    if steps[-1] != TOTAL_WEIGHT:
        errors.append("the last step must be 100% (10000 basis points)")
    return errors


def linear_steps(count: int, first: int = 100) -> tuple[int, ...]:
    """``count`` steps from ``first`` to 100% in equal increments."""
    if count < 1:
        raise ValueError("count must be >= 1")
    if count == 1:
        return (TOTAL_WEIGHT,)
    span = TOTAL_WEIGHT - first
    return tuple(first + round(span * i / (count - 1)) for i in range(count))


def s_curve_steps(count: int, first: int = 100, steepness: float = 10.0) -> tuple[int, ...]:
    """``count`` steps following a logistic curve rescaled to run from ``first`` to 100%."""
    if count < 1:
        raise ValueError("count must be >= 1")
    if count == 1:
        return (TOTAL_WEIGHT,)

    def logistic(t: float) -> float:
        return 1.0 / (1.0 + math.exp(-steepness * (t - 0.5)))

    lo, hi = logistic(0.0), logistic(1.0)
    out: list[int] = []
    for i in range(count):
        frac = (logistic(i / (count - 1)) - lo) / (hi - lo)
        value = first + round((TOTAL_WEIGHT - first) * frac)
        if out and value <= out[-1]:
            value = out[-1] + 1  # keep strictly increasing even for tiny steps
        out.append(min(value, TOTAL_WEIGHT))
    out[-1] = TOTAL_WEIGHT
    return tuple(out)


def build_steps(
    kind: str, *, steps: Sequence[int] | None = None, count: int = 5, first: int = 100
) -> tuple[int, ...]:
    """The step list for a schedule kind (explicit steps default to 1/10/50/100%)."""
    if kind == ScheduleKind.STEPS:
        return tuple(steps) if steps else DEFAULT_STEPS
    if kind == ScheduleKind.LINEAR:
        return linear_steps(count, first)
    if kind == ScheduleKind.S_CURVE:
        return s_curve_steps(count, first)
    raise ValueError(f"unknown schedule kind {kind!r}")


def rollout_serve(treatment: str, control: str, bps: int, salt: str) -> dict[str, Any]:
    """The format-v1 ``serve`` for ``bps`` basis points of ``treatment``.

    100% is served as the plain variant (the final state a person would have written); any
    lower percentage is a two-way split with the treatment first (monotonic, see module doc).
    """
    if not 0 <= bps <= TOTAL_WEIGHT:
        raise ValueError("bps must be in 0..10000")
    if bps == TOTAL_WEIGHT:
        return {"variant": treatment}
    return {
        "rollout": {
            "bucket_by": "targetingKey",
            "salt": salt,
            "weights": [
                {"variant": treatment, "weight": bps},
                {"variant": control, "weight": TOTAL_WEIGHT - bps},
            ],
        }
    }


def format_bps(bps: int) -> str:
    """1 -> '0.01%', 100 -> '1%', 1050 -> '10.5%'."""
    text = f"{bps / 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def treatment_bps(serve: Any, treatment: str) -> int:
    """How much of ``treatment`` a format-v1 serve gives, in basis points (0..10000): all
    of it for the plain variant, its weight's share of a split, none otherwise. Used to
    tell whether a rollout's first step would lower what is served now."""
    if not isinstance(serve, dict):
        return 0
    if serve.get("variant") is not None:
        return TOTAL_WEIGHT if serve.get("variant") == treatment else 0
    weights = (serve.get("rollout") or {}).get("weights") or []
    total = sum(int(w.get("weight", 0)) for w in weights if isinstance(w, dict))
    if total <= 0:
        return 0
    mine = sum(
        int(w.get("weight", 0))
        for w in weights
        if isinstance(w, dict) and w.get("variant") == treatment
    )
    return round(mine * TOTAL_WEIGHT / total)
