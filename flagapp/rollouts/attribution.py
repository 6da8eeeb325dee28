"""Which variant a user was on at a moment: the exposure join, one rule in one place.

A tracking event carries only the user's targeting key. It is attributed to the variant of
that user's most recent exposure to the flag at or before the event, so a user who moved
from control to treatment when the percentage grew counts in the variant they were actually
on. Both the stored-events guardrail source (:mod:`flagapp.rollouts.events_source`) and the
Prometheus counters (:mod:`flagapp.metrics.attribution`) use :class:`ExposureIndex`.

Pure (no ORM, no settings): a module of its own so that the metrics, which the publish chain
imports, do not import the guardrail source and, through it, the exposure buffer.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

__all__ = ["ExposureIndex"]


class ExposureIndex:
    """Per user, the time-ordered exposures: ``variant_at(user, t)`` answers "which variant
    was this user on at ``t``" in O(log k)."""

    def __init__(self, exposures: Iterable[tuple[str, datetime, str]]) -> None:
        times: dict[str, list[datetime]] = defaultdict(list)
        variants: dict[str, list[str]] = defaultdict(list)
        for user, at, variant in sorted(exposures, key=lambda e: (e[0], e[1])):
            times[user].append(at)
            variants[user].append(variant)
        self._times = dict(times)
        self._variants = dict(variants)

    def variant_at(self, user: str, at: datetime) -> str | None:
        times = self._times.get(user)
        if not times:
            return None
        i = bisect.bisect_right(times, at) - 1
        return self._variants[user][i] if i >= 0 else None

    def first_variant(self, user: str) -> str | None:
        variants = self._variants.get(user)
        return variants[0] if variants else None

    def first_time(self, user: str) -> datetime | None:
        times = self._times.get(user)
        return times[0] if times else None

    def users(self) -> Iterable[str]:
        return self._times.keys()
