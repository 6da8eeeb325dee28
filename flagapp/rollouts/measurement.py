"""Measuring a running plan's guardrails over its current step.

The controller asks one question per check — "how does each guardrail stand over this
step?" — and this module answers it: it picks the plan's configured metric source
(:func:`metric_source_for`: stored SDK events or Prometheus), asks it for each guardrail's
numbers per variant over the step's window (trimmed to ``FLAGAPP["ROLLOUT_GUARDRAIL_WINDOW"]``
when set) and judges them with :func:`flagapp.rollouts.guardrails.evaluate_guardrail`. It
decides nothing about the plan's state (that is :mod:`flagapp.rollouts.controller`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flagapp.conf import settings
from flagapp.models import RolloutPlan

from .events_source import StoredEventsSource
from .guardrails import GuardrailResult, evaluate_guardrail
from .metrics import MetricQuery, MetricSource, MetricSourceError
from .prometheus import PrometheusSource

__all__ = ["measure", "metric_source_for"]


def metric_source_for(plan: RolloutPlan) -> MetricSource:
    """The configured source for a plan (``FLAGAPP["ROLLOUT_PROMETHEUS"]`` for Prometheus)."""
    if plan.metric_source == "prometheus":
        cfg = dict(settings.get("ROLLOUT_PROMETHEUS") or {})
        if not cfg.get("url"):
            raise MetricSourceError("FLAGAPP['ROLLOUT_PROMETHEUS']['url'] is not set")
        return PrometheusSource(
            cfg["url"],
            queries=cfg.get("queries"),
            timeout=float(cfg.get("timeout", 5.0)),
            headers=cfg.get("headers"),
        )
    return StoredEventsSource()


def measure(
    plan: RolloutPlan, *, now: datetime, source: MetricSource | None = None
) -> list[GuardrailResult]:
    """Evaluate every guardrail over the current step (``step_started_at`` .. ``now``)."""
    guardrails = list(plan.guardrails.all())
    if not guardrails:
        return []
    src = source or metric_source_for(plan)
    try:
        return _measure_with(plan, guardrails, src, now)
    finally:
        if source is None and hasattr(src, "close"):
            src.close()  # a source we opened (an HTTP client) is ours to close


def _trailing_window() -> timedelta | None:
    """``FLAGAPP["ROLLOUT_GUARDRAIL_WINDOW"]`` seconds, or None: judge the whole step."""
    seconds = settings.get("ROLLOUT_GUARDRAIL_WINDOW")
    return timedelta(seconds=float(seconds)) if seconds else None


def _measure_with(
    plan: RolloutPlan, guardrails: list[Any], src: MetricSource, now: datetime
) -> list[GuardrailResult]:
    since = plan.step_started_at or plan.started_at or now
    window = _trailing_window()
    if window is not None:
        since = max(since, now - window)
    results = []
    for g in guardrails:
        spec = g.spec
        samples = src.measure(
            MetricQuery(
                flag_key=plan.flag.key,
                environment=plan.environment.key,
                spec=spec,
                since=since,
                until=now,
                variants=(plan.treatment_variant, plan.control_variant),
            )
        )
        results.append(
            evaluate_guardrail(
                spec, samples.get(plan.treatment_variant), samples.get(plan.control_variant)
            )
        )
    return results
