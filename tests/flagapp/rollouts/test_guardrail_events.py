"""The stored-events metric source: per-variant rates and percentiles, exposure join."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from flagapp.models import SdkEvent
from flagapp.rollouts.events_source import StoredEventsSource
from flagapp.rollouts.guardrails import GuardrailSpec, MetricKind
from flagapp.rollouts.metrics import MetricQuery, MetricSourceError

np = pytest.importorskip("numpy")
T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
FLAG = "checkout.new-flow"


def _q(spec: GuardrailSpec, env: str = "production") -> MetricQuery:
    return MetricQuery(FLAG, env, spec, T0, T0 + dt.timedelta(hours=1), ("on", "off"))


def _ev(
    env: Any,
    kind: str,
    user: str,
    minute: int,
    *,
    variant: str = "",
    key: str = FLAG,
    value: float | None = None,
) -> SdkEvent:
    return SdkEvent(
        environment=env,
        kind=kind,
        key=key,
        flag_key=FLAG if kind == "exposure" else "",
        variant=variant,
        targeting_key=user,
        value=value,
        timestamp=T0 + dt.timedelta(minutes=minute),
    )


def test_events_source__user_switches_variant__events_follow_variant_at_event_time(
    envs: dict[str, Any],
) -> None:
    env = envs["production"]
    SdkEvent.objects.bulk_create(
        [
            _ev(env, "exposure", "u1", 1, variant="off"),
            _ev(env, "tracking", "u1", 2, key="error"),  # while on control
            _ev(env, "exposure", "u1", 10, variant="on"),  # the percentage grew
            _ev(env, "tracking", "u1", 11, key="error"),  # now on treatment
            _ev(env, "tracking", "u1", 12, key="error"),
            _ev(env, "exposure", "u2", 1, variant="on"),
            _ev(env, "tracking", "stranger", 5, key="error"),  # never exposed: not counted
            _ev(env, "tracking", "u2", 90, key="error"),  # outside the window
        ]
    )
    samples = StoredEventsSource().measure(_q(GuardrailSpec(MetricKind.ERROR_RATE, 0.01)))
    assert (samples["on"].n, samples["on"].count) == (2, 2)
    assert (samples["off"].n, samples["off"].count) == (1, 1)
    assert samples["on"].value == pytest.approx(1.0)


def test_events_source__latency_percentile__matches_numpy_per_variant(
    envs: dict[str, Any],
) -> None:
    env = envs["production"]
    rows = []
    on_values = [float(v) for v in range(100, 400, 7)]
    off_values = [float(v) for v in range(50, 250, 3)]
    for i, v in enumerate(on_values):
        rows += [
            _ev(env, "exposure", f"on{i}", 1, variant="on"),
            _ev(env, "tracking", f"on{i}", 2, key="latency_ms", value=v),
        ]
    for i, v in enumerate(off_values):
        rows += [
            _ev(env, "exposure", f"off{i}", 1, variant="off"),
            _ev(env, "tracking", f"off{i}", 2, key="latency_ms", value=v),
        ]
    SdkEvent.objects.bulk_create(rows)
    spec = GuardrailSpec(
        MetricKind.LATENCY, 1.5, event_key="latency_ms", percentile=95, comparison="ratio"
    )
    samples = StoredEventsSource().measure(_q(spec))
    assert samples["on"].n == len(on_values)
    assert samples["on"].value == pytest.approx(float(np.percentile(on_values, 95)))
    assert samples["off"].value == pytest.approx(float(np.percentile(off_values, 95)))


def test_events_source__event_rate_other_environment__isolated(envs: dict[str, Any]) -> None:
    SdkEvent.objects.bulk_create(
        [
            _ev(envs["staging"], "exposure", "u1", 1, variant="on"),
            _ev(envs["staging"], "tracking", "u1", 2, key="refund"),
        ]
    )
    spec = GuardrailSpec(MetricKind.EVENT_RATE, 0.1, event_key="refund")
    assert StoredEventsSource().measure(_q(spec)) == {}
    assert StoredEventsSource().measure(_q(spec, "staging"))["on"].count == 1


def test_events_source__unknown_environment__metric_source_error(db: Any) -> None:
    with pytest.raises(MetricSourceError):
        StoredEventsSource().measure(_q(GuardrailSpec(MetricKind.ERROR_RATE, 0.01), "nowhere"))
