"""The ``METRICS_*`` settings checked and parsed, and where the multiprocess files live.

``config_problems`` is what check ``flagapp.E007`` reports (one message per problem, naming
the setting); ``value_buckets`` and ``allowed_networks`` parse the settings the recorder and
the ``/metrics`` view read, refusing what ``config_problems`` would report.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured

__all__ = ["allowed_networks", "config_problems", "multiprocess_dir", "value_buckets"]


def multiprocess_dir() -> str | None:
    """The multiprocess directory prometheus-client writes to, or None (one process)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def value_buckets(value: Iterable[Any]) -> tuple[float, ...]:
    try:
        out = tuple(float(b) for b in value)
    except (TypeError, ValueError):
        out = ()
    if not out or list(out) != sorted(set(out)):
        raise ImproperlyConfigured(
            "FLAGAPP['METRICS_VALUE_BUCKETS'] must be a non-empty increasing list of numbers"
        )
    return out


def config_problems(merged: Mapping[str, Any]) -> list[str]:
    """What is wrong with the ``METRICS_*`` settings (and the multiprocess directory), one
    message per problem naming the setting (``flagapp.checks``: error flagapp.E007)."""
    problems: list[str] = []
    token = merged.get("METRICS_TOKEN")
    if token is not None and (not isinstance(token, str) or not token.strip()):
        problems.append("FLAGAPP['METRICS_TOKEN'] must be a non-empty string or None")
    allow = merged.get("METRICS_ALLOW") or []
    if isinstance(allow, str) or not isinstance(allow, list | tuple):
        problems.append("FLAGAPP['METRICS_ALLOW'] must be a list of addresses or networks")
    else:
        try:
            allowed_networks(tuple(str(a) for a in allow))
        except ImproperlyConfigured as exc:
            problems.append(str(exc))
    buckets = merged.get("METRICS_VALUE_BUCKETS")
    if buckets is not None:
        try:
            value_buckets(buckets)
        except ImproperlyConfigured as exc:
            problems.append(str(exc))
    seconds = merged.get("METRICS_ATTRIBUTION_SECONDS")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        problems.append("FLAGAPP['METRICS_ATTRIBUTION_SECONDS'] must be a number >= 0")
    events = merged.get("METRICS_ATTRIBUTED_EVENTS")
    if events is not None and (
        isinstance(events, str)
        or not isinstance(events, list | tuple | set | frozenset)
        or not all(isinstance(e, str) for e in events)
    ):
        problems.append("FLAGAPP['METRICS_ATTRIBUTED_EVENTS'] must be None or a list of event keys")
    path = multiprocess_dir()
    if path and not os.path.isdir(path):
        problems.append(
            f"PROMETHEUS_MULTIPROC_DIR is {path!r}, which is not a directory: create it (empty) "
            "before the server starts"
        )
    return problems


@lru_cache(maxsize=8)
def allowed_networks(entries: tuple[str, ...]) -> tuple[Any, ...]:
    out = []
    for i, entry in enumerate(entries):
        try:
            out.append(ipaddress.ip_network(str(entry), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"FLAGAPP['METRICS_ALLOW'][{i}]: {entry!r} is not an IP address or network"
            ) from None
    return tuple(out)
