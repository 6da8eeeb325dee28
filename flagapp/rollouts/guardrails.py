"""Guardrail judgement: one metric, per variant, treatment compared with control.

Pure functions over ``VariantSample`` counts, whatever produced them (stored events or
Prometheus). The rule that matters most: below the minimum sample there is NO judgement —
neither a breach (no rollback on noise) nor a pass (no step taken on too little evidence).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "Comparison",
    "GuardrailResult",
    "GuardrailSpec",
    "MetricKind",
    "Status",
    "VariantSample",
    "evaluate_guardrail",
    "format_metric_value",
    "overall_status",
]


class MetricKind(StrEnum):
    ERROR_RATE = "error_rate"  # error events (track key, default "error") per exposure
    LATENCY = "latency"  # a percentile of a track event's value (e.g. "latency_ms")
    EVENT_RATE = "event_rate"  # any tracked event per exposure


class Comparison(StrEnum):
    ABSOLUTE = "absolute"  # treatment value > threshold
    DELTA = "delta"  # treatment - control > threshold
    RATIO = "ratio"  # treatment / control > threshold


class Status(StrEnum):
    OK = "ok"
    BREACH = "breach"
    INSUFFICIENT = "insufficient"  # below the minimum sample: no judgement either way


@dataclass(frozen=True, slots=True)
class GuardrailSpec:
    metric: str
    threshold: float
    event_key: str = "error"
    percentile: float = 95.0
    comparison: str = Comparison.ABSOLUTE
    min_sample: int = 1000

    @property
    def label(self) -> str:
        """Short name used in history reasons: ``error_rate``, ``latency_p95``..."""
        if self.metric == MetricKind.LATENCY:
            return f"{self.event_key}_p{self.percentile:g}"
        if self.metric == MetricKind.EVENT_RATE:
            return f"{self.event_key}_rate"
        return str(self.metric)

    @property
    def is_rate(self) -> bool:
        return self.metric in (MetricKind.ERROR_RATE, MetricKind.EVENT_RATE)


@dataclass(frozen=True, slots=True)
class VariantSample:
    """One variant's measurement. ``n`` is the sample behind ``value``: exposures for rates,
    observed values for a latency percentile. ``count`` is the rate's numerator."""

    variant: str
    n: int
    value: float | None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    spec: GuardrailSpec
    status: Status
    message: str
    value: float | None = None
    control_value: float | None = None
    n: int = 0
    control_n: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form stored with each check (chart and history read it back)."""
        return {
            "label": self.spec.label,
            "metric": str(self.spec.metric),
            "comparison": str(self.spec.comparison),
            "threshold": self.spec.threshold,
            "status": str(self.status),
            "message": self.message,
            "value": self.value,
            "control_value": self.control_value,
            "n": self.n,
            "control_n": self.control_n,
        }


def format_metric_value(spec: GuardrailSpec, value: float) -> str:
    if spec.is_rate:
        return f"{value * 100:.1f}%"
    return f"{value:.1f}"


def _format_threshold(spec: GuardrailSpec) -> str:
    if spec.comparison == Comparison.RATIO:
        return f"x{spec.threshold:.2f}"
    if spec.comparison == Comparison.DELTA:
        if spec.is_rate:
            return f"+{spec.threshold * 100:.1f}pp"
        return f"+{spec.threshold:.1f}"
    return format_metric_value(spec, spec.threshold)


def evaluate_guardrail(
    spec: GuardrailSpec, treatment: VariantSample | None, control: VariantSample | None
) -> GuardrailResult:
    """Judge one guardrail. Messages read like the history: ``error_rate 3.1% > 1.0% (n=4,210)``."""
    label = spec.label
    t_n = treatment.n if treatment else 0
    c_n = control.n if control else 0
    if treatment is None or t_n < spec.min_sample or treatment.value is None:
        return GuardrailResult(
            spec,
            Status.INSUFFICIENT,
            f"{label}: n={t_n:,} < minimum sample {spec.min_sample:,}",
            value=treatment.value if treatment else None,
            n=t_n,
            control_n=c_n,
        )
    value = treatment.value
    shown = format_metric_value(spec, value)
    if spec.comparison == Comparison.ABSOLUTE:
        breach = value > spec.threshold
        op = ">" if breach else "<="
        return GuardrailResult(
            spec,
            Status.BREACH if breach else Status.OK,
            f"{label} {shown} {op} {_format_threshold(spec)} (n={t_n:,})",
            value=value,
            control_value=control.value if control else None,
            n=t_n,
            control_n=c_n,
        )
    # Relative comparisons need a control measured on enough traffic too.
    if control is None or c_n < spec.min_sample or control.value is None:
        return GuardrailResult(
            spec,
            Status.INSUFFICIENT,
            f"{label}: control n={c_n:,} < minimum sample {spec.min_sample:,}",
            value=value,
            n=t_n,
            control_n=c_n,
        )
    base = control.value
    base_shown = format_metric_value(spec, base)
    if spec.comparison == Comparison.DELTA:
        delta = value - base
        breach = delta > spec.threshold
        delta_shown = f"{delta * 100:+.1f}pp" if spec.is_rate else f"{delta:+.1f}"
        detail = f"{delta_shown} {'>' if breach else '<='} {_format_threshold(spec)}"
    elif spec.comparison == Comparison.RATIO:
        ratio = value / base if base > 0 else (float("inf") if value > 0 else 1.0)
        breach = ratio > spec.threshold
        detail = f"x{ratio:.2f} {'>' if breach else '<='} {_format_threshold(spec)}"
    else:
        raise ValueError(f"unknown comparison {spec.comparison!r}")
    return GuardrailResult(
        spec,
        Status.BREACH if breach else Status.OK,
        f"{label} {shown} vs control {base_shown}: {detail} (n={t_n:,})",
        value=value,
        control_value=base,
        n=t_n,
        control_n=c_n,
    )


def overall_status(results: Sequence[GuardrailResult]) -> Status:
    """Any breach wins; else any insufficient sample blocks; else OK (no guardrails = OK)."""
    statuses = {r.status for r in results}
    if Status.BREACH in statuses:
        return Status.BREACH
    if Status.INSUFFICIENT in statuses:
        return Status.INSUFFICIENT
    return Status.OK


def samples_by_variant(samples: Sequence[VariantSample]) -> Mapping[str, VariantSample]:
    return {s.variant: s for s in samples}
