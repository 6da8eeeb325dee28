"""Experiment analysis from stored exposures and track events.

Unit of analysis: the user (targeting key). A user belongs to the variant of their FIRST
exposure in the experiment window (later exposures to another variant, after a targeting
change, do not move them: that keeps groups disjoint); a user converts if they sent the
conversion event at or after that first exposure. Per variant: users, conversions, rate;
per non-control variant: the two-proportion z-test against control with a confidence
interval of the difference. Before any of that, the sample-ratio-mismatch check compares
the users per variant with the intended split: a mismatch means assignment is broken and
the comparison cannot be trusted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from flagapp import exposures as buffered
from flagapp.models import FlagState, SdkEvent

from .stats import (
    ProportionTest,
    SampleRatioCheck,
    sample_ratio_mismatch,
    sample_size_per_variant,
    two_proportion_ztest,
)

__all__ = ["ExperimentResults", "VariantResult", "analyse", "expected_weights", "summarise"]


@dataclass(frozen=True)
class VariantResult:
    variant: str
    users: int
    conversions: int
    control: bool
    test: ProportionTest | None

    @property
    def rate(self) -> float:
        return self.conversions / self.users if self.users else 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "variant": self.variant,
            "users": self.users,
            "conversions": self.conversions,
            "rate": self.rate,
            "control": self.control,
        }
        if self.test is not None:
            out.update(
                diff=self.test.diff,
                relative_lift=self.test.relative_lift,
                z=self.test.z,
                p_value=self.test.p_value,
                ci_low=self.test.ci_low,
                ci_high=self.test.ci_high,
                significant=self.test.significant,
            )
        return out


@dataclass(frozen=True)
class ExperimentResults:
    variants: tuple[VariantResult, ...]
    srm: SampleRatioCheck | None
    confidence: float
    sample_size_per_variant: int | None
    since: datetime
    until: datetime

    def as_dict(self) -> dict[str, Any]:
        srm = None
        if self.srm is not None:
            srm = {
                "observed": list(self.srm.observed),
                "expected": list(self.srm.expected),
                "chi2": self.srm.statistic,
                "df": self.srm.df,
                "p_value": self.srm.p_value,
                "threshold": self.srm.threshold,
                "mismatch": self.srm.mismatch,
            }
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "confidence": self.confidence,
            "variants": [v.as_dict() for v in self.variants],
            "sample_ratio_mismatch": srm,
            "sample_size_per_variant": self.sample_size_per_variant,
        }


def summarise(
    assignments: dict[str, str],
    converted: set[str],
    *,
    control: str,
    weights: dict[str, float],
    confidence: float = 0.95,
    srm_threshold: float = 0.001,
    baseline_rate: float | None = None,
    minimum_detectable_effect: float | None = None,
    since: datetime,
    until: datetime,
) -> ExperimentResults:
    """Pure part: users -> variant and the set of converted users -> results."""
    users: dict[str, int] = defaultdict(int)
    conversions: dict[str, int] = defaultdict(int)
    for user, variant in assignments.items():
        users[variant] += 1
        if user in converted:
            conversions[variant] += 1
    names = list(dict.fromkeys([control, *weights, *sorted(users)]))
    results = []
    for name in names:
        test = None
        if name != control and users[name] and users[control]:
            test = two_proportion_ztest(
                conversions[control],
                users[control],
                conversions[name],
                users[name],
                confidence=confidence,
            )
        results.append(VariantResult(name, users[name], conversions[name], name == control, test))
    srm = None
    weighted = [n for n in names if weights.get(n, 0) > 0]
    if len(weighted) >= 2:
        srm = sample_ratio_mismatch(
            [users[n] for n in weighted], [weights[n] for n in weighted], threshold=srm_threshold
        )
    size = None
    base = baseline_rate
    if base is None and users[control]:
        base = conversions[control] / users[control]
    if minimum_detectable_effect and base is not None and 0 < base < 1:
        try:
            size = sample_size_per_variant(base, minimum_detectable_effect, alpha=1 - confidence)
        except ValueError:
            size = None
    return ExperimentResults(tuple(results), srm, confidence, size, since, until)


def expected_weights(experiment: Any) -> dict[str, float]:
    """The intended split: the experiment's own, else the flag's current fallthrough
    rollout weights in the environment (a fixed variant means no split to check)."""
    if experiment.expected_weights:
        return {str(k): float(v) for k, v in experiment.expected_weights.items()}
    state = FlagState.objects.filter(
        flag_id=experiment.flag_id, environment_id=experiment.environment_id
    ).first()
    rollout = (state.fallthrough or {}).get("rollout") if state else None
    if not rollout:
        return {}
    return {w["variant"]: float(w["weight"]) for w in rollout.get("weights", [])}


def analyse(experiment: Any, *, now: datetime | None = None) -> ExperimentResults:
    """Read the experiment's exposures and conversions and summarise them (this process's
    buffered in-process exposures and ``track()`` events are stored first)."""
    buffered.flush()

    since = experiment.started_at
    until = experiment.ended_at or now or timezone.now()
    window = {"timestamp__gte": since, "timestamp__lte": until}
    exposures = (
        SdkEvent.objects.filter(
            environment_id=experiment.environment_id,
            kind=SdkEvent.KIND_EXPOSURE,
            flag_key=experiment.flag.key,
            **window,
        )
        .exclude(variant="")
        .exclude(targeting_key="")
    )
    # One ordered pass keeps each user's FIRST exposure (no per-user lists in memory).
    first: dict[str, tuple[datetime, str]] = {}
    rows = exposures.order_by("targeting_key", "timestamp", "id").values_list(
        "targeting_key", "timestamp", "variant"
    )
    for user, at, variant in rows.iterator(chunk_size=5000):
        if user not in first:
            first[user] = (at, variant)
    assignments = {user: variant for user, (_, variant) in first.items()}
    converted: set[str] = set()
    conversions = SdkEvent.objects.filter(
        environment_id=experiment.environment_id,
        kind=SdkEvent.KIND_TRACKING,
        key=experiment.conversion_event,
        **window,
    ).values_list("targeting_key", "timestamp")
    for user, at in conversions.iterator(chunk_size=5000):
        seen = first.get(user)
        if seen is not None and at >= seen[0]:
            converted.add(user)
    return summarise(
        assignments,
        converted,
        control=experiment.control_variant,
        weights=expected_weights(experiment),
        confidence=experiment.confidence,
        srm_threshold=experiment.srm_threshold,
        baseline_rate=experiment.baseline_rate,
        minimum_detectable_effect=experiment.minimum_detectable_effect,
        since=since,
        until=until,
    )
