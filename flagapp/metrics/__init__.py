"""Prometheus metrics: what flagapp counts, and the ``/metrics`` view that exposes it.

Why here and not at the HTTP views: the numbers the guardrails read must count each stored
event exactly once, whichever path stored it (an SDK batch, a retried batch, this server's
own exposures). So :func:`events_stored` is called by the one writer of ``SdkEvent`` rows
(``flagapp.sdk.events``), inside the batch's transaction, and the counters move only when
that transaction commits: a rolled-back write counts nothing, a replayed batch (stored once
per ``X-Flagapp-Batch-Id``) never reaches it again.

Attribution: a tracking event carries only a targeting key. Like the stored-events guardrail
source (``flagapp.rollouts.events_source``), each one is attributed, per flag, to the variant
of the user's latest exposure at or before the event (``ExposureIndex``, one rule in one
place), looked up with one indexed query per batch over the last
``METRICS_ATTRIBUTION_SECONDS``. An event with no such exposure is counted in
``flagapp_events_unattributed_total``.

Several processes (``uvicorn --workers N``, gunicorn): prometheus-client's multiprocess mode.
Each process writes its values to memory-mapped files under ``PROMETHEUS_MULTIPROC_DIR``
(set before the server starts, emptied at each deploy); ``/metrics`` in any worker sums them
(``flagapp_sdk_streams_open`` only over live processes: files of dead workers are reaped at
scrape). Without the variable, one process serves its own registry. The view and its access
rules are ``flagapp.metrics.view`` (kept apart: the publish chain imports this module, and
the view needs the request helpers of ``flagapp.evaluation``).

Without prometheus-client installed (the ``metrics`` extra) every recording function is a
no-op and ``/metrics`` answers 501. Catalogue, settings and set-up: docs/observability.md.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, transaction

from flagapp.conf import settings

try:
    import prometheus_client
except ImportError:  # pragma: no cover - the metrics extra is not installed
    prometheus_client = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from flagapp.sdk.events import Batch

__all__ = [
    "AVAILABLE",
    "DEFAULT_VALUE_BUCKETS",
    "allowed_networks",
    "batch_outcome",
    "config_problems",
    "enabled",
    "events_stored",
    "multiprocess_dir",
    "publish_failed",
    "published",
    "rate_limited",
    "stream_closed",
    "stream_opened",
]

logger = logging.getLogger("flagapp.metrics")

AVAILABLE = prometheus_client is not None

#: Buckets of ``flagapp_event_value``: unit-free (a ``latency_ms`` event is in milliseconds),
#: 1 to 10,000. A guardrail threshold on a bucket boundary is judged exactly; between two
#: boundaries ``histogram_quantile`` interpolates. ``METRICS_VALUE_BUCKETS`` replaces them.
DEFAULT_VALUE_BUCKETS: tuple[float, ...] = (
    1,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
)


def multiprocess_dir() -> str | None:
    """The multiprocess directory prometheus-client writes to, or None (one process)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def enabled() -> bool:
    """Whether this process records metrics: prometheus-client is installed and
    ``FLAGAPP["METRICS_ENABLED"]`` is true."""
    return AVAILABLE and bool(settings.get("METRICS_ENABLED", True))


class _Metrics:
    """Every metric object, created once per process (the first time one is recorded)."""

    def __init__(self, value_buckets: Sequence[float]) -> None:
        pc: Any = prometheus_client
        self.exposures = pc.Counter(
            "flagapp_exposures",
            "Exposure events stored, per flag and variant served.",
            ["flag", "environment", "variant"],
        )
        self.events = pc.Counter(
            "flagapp_events",
            "Tracking events stored, attributed to the variant of the user's latest exposure "
            "to each flag at or before the event.",
            ["flag", "environment", "variant", "event"],
        )
        self.event_value = pc.Histogram(
            "flagapp_event_value",
            "Values of tracking events (e.g. latency_ms), attributed like flagapp_events_total.",
            ["flag", "environment", "variant", "event"],
            buckets=tuple(value_buckets),
        )
        self.unattributed = pc.Counter(
            "flagapp_events_unattributed",
            "Tracking events stored with no exposure to attribute them to (no targeting key, "
            "or none within METRICS_ATTRIBUTION_SECONDS).",
            ["environment", "event"],
        )
        self.accepted = pc.Counter(
            "flagapp_events_accepted",
            "Events stored, per kind (tracking, exposure, evaluation).",
            ["environment", "kind"],
        )
        self.rejected = pc.Counter(
            "flagapp_events_rejected",
            "Events refused one by one inside a stored batch (invalid field).",
            ["environment"],
        )
        self.batches = pc.Counter(
            "flagapp_event_batches",
            "POST /sdk/v1/events batches by outcome: stored, replayed (a retried batch id, "
            "not stored again), invalid (400), too_large (413).",
            ["environment", "outcome"],
        )
        self.publish_seconds = pc.Histogram(
            "flagapp_publish_duration_seconds",
            "Time to publish an environment (lock, compile, compare, store), per outcome: "
            "published (a new version) or unchanged.",
            ["environment", "outcome"],
        )
        self.publish_failures = pc.Counter(
            "flagapp_publish_failures",
            "Publishes that raised (left to the reconciler).",
            ["environment"],
        )
        self.streams = pc.Gauge(
            "flagapp_sdk_streams_open",
            "SDK streams (GET /sdk/v1/stream) open now.",
            ["environment"],
            multiprocess_mode="livesum",
        )
        self.rate_limited = pc.Counter(
            "flagapp_rate_limited_requests",
            "Requests refused with 429 by the rate limiter, per scope (sdk, ofrep, events).",
            ["scope"],
        )


_metrics: _Metrics | None = None
_metrics_lock = threading.Lock()


def _get() -> _Metrics | None:
    global _metrics
    if not enabled():
        return None
    if _metrics is None:
        with _metrics_lock:
            if _metrics is None:
                buckets = settings.get("METRICS_VALUE_BUCKETS") or DEFAULT_VALUE_BUCKETS
                _metrics = _Metrics(_buckets(buckets))
    return _metrics


def _buckets(value: Iterable[Any]) -> tuple[float, ...]:
    try:
        out = tuple(float(b) for b in value)
    except (TypeError, ValueError):
        out = ()
    if not out or list(out) != sorted(set(out)):
        raise ImproperlyConfigured(
            "FLAGAPP['METRICS_VALUE_BUCKETS'] must be a non-empty increasing list of numbers"
        )
    return out


# ---------------------------------------------------------------------------------------
# recording: never raises (a metric must not fail the request or the write it describes)

_F = TypeVar("_F", bound=Callable[..., None])
_warned_at = 0.0


def _never_raises(fn: _F) -> _F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        global _warned_at
        try:
            fn(*args, **kwargs)
        except Exception:
            now = time.monotonic()
            if now - _warned_at > 60:  # at most one traceback a minute per process
                _warned_at = now
                logger.warning(
                    "flagapp metrics: %s failed; not counted", fn.__name__, exc_info=True
                )

    return cast(_F, wrapper)


@_never_raises
def events_stored(env_pk: int, env_key: str, batch: Batch) -> None:
    """Count a batch being stored in the current transaction (on commit only).

    Called by the writer of ``SdkEvent`` rows after it inserted them: the attribution query
    sees the batch's own exposures (a user's exposure and the event it led to often travel
    in one batch).
    """
    m = _get()
    if m is None:
        return
    exposures = Tally((e["flag_key"], e["variant"]) for e in batch.exposures)
    attributed, unattributed = _attribute(env_pk, batch.tracking)
    kinds = {
        "tracking": len(batch.tracking),
        "exposure": len(batch.exposures),
        "evaluation": len(batch.evaluations),
    }
    rejected = len(batch.rejected)

    @_never_raises
    def count() -> None:
        for (flag, variant), n in exposures.items():
            m.exposures.labels(flag, env_key, variant).inc(n)
        for flag, variant, event, value in attributed:
            m.events.labels(flag, env_key, variant, event).inc()
            if value is not None:
                m.event_value.labels(flag, env_key, variant, event).observe(value)
        for event, n in Tally(unattributed).items():
            m.unattributed.labels(env_key, event).inc(n)
        for kind, n in kinds.items():
            if n:
                m.accepted.labels(env_key, kind).inc(n)
        if rejected:
            m.rejected.labels(env_key).inc(rejected)

    transaction.on_commit(count, robust=True)


def _attribute(
    env_pk: int, tracking: Sequence[dict[str, Any]]
) -> tuple[list[tuple[str, str, str, float | None]], list[str]]:
    """``(flag, variant, event, value)`` per flag the user was exposed to, and the names of
    events attributed to no flag."""
    from flagapp.models import SdkEvent
    from flagapp.rollouts.events_source import ExposureIndex

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


@_never_raises
def batch_outcome(env_key: str, outcome: str) -> None:
    """One ``POST /sdk/v1/events`` batch: ``stored``, ``replayed``, ``invalid``, ``too_large``."""
    m = _get()
    if m is not None:
        m.batches.labels(env_key, outcome).inc()


@_never_raises
def published(env_key: str, seconds: float, *, created: bool) -> None:
    """One publish of ``env_key`` took ``seconds``; ``created``: it stored a new version."""
    m = _get()
    if m is not None:
        m.publish_seconds.labels(env_key, "published" if created else "unchanged").observe(seconds)


@_never_raises
def publish_failed(env_key: str) -> None:
    m = _get()
    if m is not None:
        m.publish_failures.labels(env_key).inc()


@_never_raises
def stream_opened(env_key: str) -> None:
    m = _get()
    if m is not None:
        m.streams.labels(env_key).inc()


@_never_raises
def stream_closed(env_key: str) -> None:
    m = _get()
    if m is not None:
        m.streams.labels(env_key).dec()


@_never_raises
def rate_limited(scope: str) -> None:
    m = _get()
    if m is not None:
        m.rate_limited.labels(scope).inc()


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
            _buckets(buckets)
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


# ---------------------------------------------------------------------------------------
# exposition


class _SnapshotCollector:
    """Read at scrape time from the database (the truth, whichever process published):
    the newest published version of each environment and when it was published."""

    def collect(self) -> Iterator[Any]:
        from django.db.models import Max
        from prometheus_client.core import GaugeMetricFamily

        from flagapp.models import Snapshot

        version = GaugeMetricFamily(
            "flagapp_snapshot_version",
            "Newest published snapshot version per environment.",
            labels=["environment"],
        )
        at = GaugeMetricFamily(
            "flagapp_snapshot_published_timestamp_seconds",
            "When the newest snapshot of each environment was published (Unix time).",
            labels=["environment"],
        )
        try:
            rows = list(
                Snapshot.objects.values("environment__key")
                .annotate(version=Max("version"), at=Max("created_at"))
                .order_by("environment__key")
            )
        except DatabaseError:
            logger.warning("flagapp /metrics: snapshot versions unavailable", exc_info=True)
            return
        for row in rows:
            version.add_metric([row["environment__key"]], float(row["version"]))
            at.add_metric([row["environment__key"]], row["at"].timestamp())
        yield version
        yield at


class _Forward:
    """A collector that yields another registry's metrics (single-process exposition)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()


def _reap_dead_processes(path: str) -> None:
    """Drop the ``live*`` gauge files of processes that are gone (a worker that crashed or
    was replaced): without this, their open streams would be counted for good. uvicorn has
    no child-exit hook to call ``mark_process_dead`` from, so the scrape does it."""
    from prometheus_client import multiprocess

    mp: Any = multiprocess  # prometheus-client's multiprocess module is not annotated
    for name in os.listdir(path):
        if not (name.startswith("gauge_live") and name.endswith(".db")):
            continue
        try:
            pid = int(name.rsplit("_", 1)[1][:-3])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mp.mark_process_dead(pid, path)
        except PermissionError:
            pass  # alive, another user's


def scrape(accept: str | None = None) -> tuple[bytes, str]:
    """The exposition body and its content type (OpenMetrics when ``accept`` asks for it)."""
    from prometheus_client import CollectorRegistry, exposition

    registry = CollectorRegistry()
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        if not os.path.isdir(path):
            raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR {path!r} is not a directory")
        _reap_dead_processes(path)
        mp: Any = multiprocess  # not annotated
        mp.MultiProcessCollector(registry, path=path)
    else:
        registry.register(_Forward(prometheus_client.REGISTRY))
    registry.register(_SnapshotCollector())
    encoder, content_type = exposition.choose_encoder(accept or "")
    return encoder(registry), content_type


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
