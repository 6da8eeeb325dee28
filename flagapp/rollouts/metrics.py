"""The metric-source interface: where guardrail numbers come from.

Two implementations: ``flagapp.rollouts.events_source.StoredEventsSource`` (the exposures
and track events providers POST to ``/sdk/v1/events``) and
``flagapp.rollouts.prometheus.PrometheusSource`` (an existing monitoring stack). A source
answers one question — "this metric, per variant, over this window" — so the controller,
the guardrail maths and the charts do not care which one is configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from flagapp.exceptions import MetricSourceError

from .guardrails import GuardrailSpec, VariantSample

__all__ = ["MetricQuery", "MetricSource", "MetricSourceError"]


@dataclass(frozen=True, slots=True)
class MetricQuery:
    flag_key: str
    environment: str
    spec: GuardrailSpec
    since: datetime
    until: datetime
    variants: tuple[str, ...]


@runtime_checkable
class MetricSource(Protocol):
    name: str

    def measure(self, query: MetricQuery) -> dict[str, VariantSample]:
        """Samples keyed by variant; variants without data may be missing."""
        ...
