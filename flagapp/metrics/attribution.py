"""Which flag and variant each stored tracking event counts for, in the Prometheus counters.

A tracking event carries only a targeting key. Like the stored-events guardrail source, each
one is attributed, per flag, to the variant of the user's latest exposure at or before the
event (:class:`flagapp.rollouts.attribution.ExposureIndex`, the one rule), looked up with one
indexed query per batch over the last ``METRICS_ATTRIBUTION_SECONDS``. Called by
:func:`flagapp.metrics.events_stored` inside the batch's transaction, so the batch's own
exposures are seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from flagapp.conf import settings
from flagapp.models import SdkEvent
from flagapp.rollouts.attribution import ExposureIndex

__all__ = ["attribute"]


def attribute(
    env_pk: int, tracking: Sequence[dict[str, Any]]
) -> tuple[list[tuple[str, str, str, float | None]], list[str]]:
    """``(flag, variant, event, value)`` per flag the user was exposed to, and the names of
    events attributed to no flag."""
    wanted = settings.get("METRICS_ATTRIBUTED_EVENTS")
    events = [e for e in tracking if wanted is None or e["key"] in wanted]
    users = sorted({e["targeting_key"] for e in events if e["targeting_key"]})
    rows: list[tuple[str, str, Any, str]] = []
    if users:
        lookback = timedelta(seconds=float(settings.get("METRICS_ATTRIBUTION_SECONDS") or 0))
        since = min(e["timestamp"] for e in events) - lookback
        until = max(e["timestamp"] for e in events)
        exposures = SdkEvent.objects.filter(
            environment_id=env_pk,
            kind=SdkEvent.KIND_EXPOSURE,
            timestamp__gte=since,
            timestamp__lte=until,
        ).exclude(variant="")
        for i in range(0, len(users), 500):
            rows.extend(
                exposures.filter(targeting_key__in=users[i : i + 500]).values_list(
                    "flag_key", "targeting_key", "timestamp", "variant"
                )
            )
    by_flag: dict[str, list[tuple[str, Any, str]]] = {}
    flags_of: dict[str, set[str]] = {}
    for flag, user, at, variant in rows:
        by_flag.setdefault(flag, []).append((user, at, variant))
        flags_of.setdefault(user, set()).add(flag)
    index = {flag: ExposureIndex(exposures) for flag, exposures in by_flag.items()}
    attributed: list[tuple[str, str, str, float | None]] = []
    unattributed: list[str] = []
    for e in events:
        user = e["targeting_key"]
        hit = False
        for flag in sorted(flags_of.get(user, ())):
            served = index[flag].variant_at(user, e["timestamp"])
            if served is not None:
                attributed.append((flag, served, e["key"], e["value"]))
                hit = True
        if not hit:
            unattributed.append(e["key"])
    return attributed, unattributed
