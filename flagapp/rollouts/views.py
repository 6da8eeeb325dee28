"""Chart data from the database: shared by the admin, the API and the simulation command."""

from __future__ import annotations

from typing import Any

from .charts import ExperimentRow, Marker, TimelinePoint, experiment_svg, rollout_timeline_svg

__all__ = ["experiment_results_svg", "plan_timeline_svg"]


def plan_timeline_svg(plan: Any, *, guardrail_index: int = 0) -> str:
    """The plan's served percentage over time with one guardrail's treatment value (from
    the recorded checks) and its threshold; rollbacks and pauses are marked."""
    transitions = list(plan.transitions.order_by("at", "id"))
    percentage = [TimelinePoint(t.at, t.to_bps / 100) for t in transitions]
    markers = [
        Marker(t.at, f"{t.action}: {t.reason}", bad=t.action == "rollback")
        for t in transitions
        if t.action in ("pause", "resume", "rollback")
    ]
    guardrails = list(plan.guardrails.all())
    metric: list[TimelinePoint] = []
    threshold = None
    label = ""
    is_rate = True
    if len(guardrails) > guardrail_index:
        g = guardrails[guardrail_index]
        spec = g.spec
        label, is_rate = spec.label, spec.is_rate
        threshold = g.threshold if g.comparison == "absolute" else None
        for check in plan.checks.order_by("at", "id"):
            results = check.results or []
            if len(results) > guardrail_index:
                result = results[guardrail_index]
                value = result.get("value")
                if isinstance(value, int | float):
                    metric.append(TimelinePoint(check.at, float(value), result.get("status")))
    return rollout_timeline_svg(
        percentage,
        metric=metric,
        metric_label=label,
        threshold=threshold,
        metric_is_rate=is_rate,
        markers=markers,
        end=plan.finished_at or plan.last_check_at,
        title=f"{plan.flag.key} in {plan.environment.key}: {plan.treatment_variant} rollout",
    )


def experiment_results_svg(results: Any) -> str:
    """Forest plot of an ``ExperimentResults`` (see flagapp.rollouts.experiments)."""
    rows = [
        ExperimentRow(
            variant=v.variant,
            rate=v.rate,
            n=v.users,
            diff=v.test.diff if v.test else None,
            ci_low=v.test.ci_low if v.test else None,
            ci_high=v.test.ci_high if v.test else None,
            significant=bool(v.test and v.test.significant),
            control=v.control,
            p_value=v.test.p_value if v.test else None,
        )
        for v in results.variants
    ]
    return experiment_svg(rows, confidence=results.confidence)
