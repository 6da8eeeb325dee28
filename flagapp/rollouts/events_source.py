"""Guardrail metrics from the events providers POST to ``/sdk/v1/events``.

Exposure events carry the variant a user was served; tracking events (``client.track``)
carry only the user's targeting key. A tracking event is therefore attributed to the variant
of that user's most recent exposure to the flag at or before the event (the standard
exposure join): a user who moved from control to treatment when the percentage grew is
counted in the variant they were actually on when the event happened
(:class:`flagapp.rollouts.attribution.ExposureIndex`, shared with the Prometheus counters).

Rates divide by exposure events, so providers must send every exposure of a guarded flag
(``exposure_sample_rate=1.0``); with sampling the rates are overstated by 1/rate.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db.models import Count, QuerySet

from flagapp import exposures as buffered
from flagapp.models import Environment, SdkEvent

from .attribution import ExposureIndex
from .guardrails import MetricKind, VariantSample
from .metrics import MetricQuery, MetricSourceError
from .stats import percentile

__all__ = ["ExposureIndex", "StoredEventsSource"]


def _index_for(exposures: QuerySet[Any], users: set[str]) -> ExposureIndex:
    """Exposures of just these users (the ones with track events), in chunks: track events
    are usually far fewer than exposures, so this is where the Python work is saved."""
    rows: list[tuple[str, datetime, str]] = []
    ordered = sorted(users)
    for i in range(0, len(ordered), _CHUNK):
        chunk = ordered[i : i + _CHUNK]
        rows.extend(
            exposures.filter(targeting_key__in=chunk).values_list(
                "targeting_key", "timestamp", "variant"
            )
        )
    return ExposureIndex(rows)


_CHUNK = 500


class StoredEventsSource:
    """``MetricSource`` over ``flagapp.models.SdkEvent``.

    Denominators (exposures per variant) are counted by the database; only the users who
    sent the measured track event have their exposures loaded, to attribute each event to
    the variant the user was on at that moment."""

    name = "events"

    def measure(self, query: MetricQuery) -> dict[str, VariantSample]:
        buffered.flush()  # this process's own exposures and track() events first

        env_id = Environment.objects.filter(key=query.environment).values_list("pk", flat=True)
        env_pk = next(iter(env_id), None)
        if env_pk is None:
            raise MetricSourceError(f"unknown environment {query.environment!r}")
        window = {"timestamp__gte": query.since, "timestamp__lte": query.until}
        exposures = SdkEvent.objects.filter(
            environment_id=env_pk, kind=SdkEvent.KIND_EXPOSURE, flag_key=query.flag_key, **window
        ).exclude(variant="")
        tracked = SdkEvent.objects.filter(
            environment_id=env_pk, kind=SdkEvent.KIND_TRACKING, key=query.spec.event_key, **window
        ).exclude(targeting_key="")
        spec = query.spec
        if spec.metric in (MetricKind.ERROR_RATE, MetricKind.EVENT_RATE):
            n_by_variant = {
                row["variant"]: row["n"]
                for row in exposures.values("variant").annotate(n=Count("id")).order_by()
            }
            events = list(tracked.values_list("targeting_key", "timestamp"))
            index = _index_for(exposures, {user for user, _ in events})
            counts: dict[str, int] = defaultdict(int)
            for user, at in events:
                variant = index.variant_at(user, at)
                if variant is not None:
                    counts[variant] += 1
            return {
                v: VariantSample(v, n, counts[v] / n if n else None, counts[v])
                for v, n in n_by_variant.items()
            }
        if spec.metric == MetricKind.LATENCY:
            rows = list(
                tracked.exclude(value=None).values_list("targeting_key", "timestamp", "value")
            )
            index = _index_for(exposures, {user for user, _, _ in rows})
            values: dict[str, list[float]] = defaultdict(list)
            for user, at, value in rows:
                variant = index.variant_at(user, at)
                if variant is not None and value is not None:
                    values[variant].append(value)
            return {
                v: VariantSample(v, len(vals), percentile(vals, spec.percentile))
                for v, vals in values.items()
            }
        raise MetricSourceError(f"unsupported metric {spec.metric!r}")
