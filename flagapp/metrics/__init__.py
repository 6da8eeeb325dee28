"""Prometheus metrics: what flagapp counts, and the ``/metrics`` view that exposes it.

Why here and not at the HTTP views: the numbers the guardrails read must count each stored
event exactly once, whichever path stored it (an SDK batch, a retried batch, this server's
own exposures). So :func:`events_stored` is called by the one writer of ``SdkEvent`` rows
(``flagapp.sdk.events``), inside the batch's transaction, and the counters move only when
that transaction commits: a rolled-back write counts nothing, a replayed batch (stored once
per ``X-Flagapp-Batch-Id``) never reaches it again.

Attribution: a tracking event carries only a targeting key. Like the stored-events guardrail
source (``flagapp.rollouts.events_source``), each one is attributed, per flag, to the variant
of the user's latest exposure at or before the event (``flagapp.rollouts.attribution.
ExposureIndex``, one rule in one place), looked up with one indexed query per batch over the
last ``METRICS_ATTRIBUTION_SECONDS`` (``flagapp.metrics.attribution``). An event with no such
exposure is counted in ``flagapp_events_unattributed_total``.

Several processes (``uvicorn --workers N``, gunicorn): prometheus-client's multiprocess mode.
Each process writes its values to memory-mapped files under ``PROMETHEUS_MULTIPROC_DIR``
(set before the server starts, emptied at each deploy); ``/metrics`` in any worker sums them
(``flagapp_sdk_streams_open`` only over live processes: files of dead workers are reaped at
scrape). Without the variable, one process serves its own registry. The view and its access
rules are ``flagapp.metrics.view`` (kept apart: the publish chain imports this module, and
the view needs the request helpers of ``flagapp.evaluation``).

Without prometheus-client installed (the ``metrics`` extra) every recording function is a
no-op and ``/metrics`` answers 501. Catalogue, settings and set-up: docs/observability.md.

This module is the recorder (the metric objects and the functions that never raise); beside
it, each re-exported here: ``attribution`` (tracking event -> flag and variant),
``exposition`` (``scrape``: what ``/metrics`` answers) and ``config`` (the ``METRICS_*``
settings parsed and checked: ``config_problems``, ``allowed_networks``, ``multiprocess_dir``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.db import transaction

from flagapp.conf import settings

from .attribution import attribute
from .config import allowed_networks, config_problems, multiprocess_dir, value_buckets
from .exposition import scrape

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
    "scrape",
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
                _metrics = _Metrics(value_buckets(buckets))
    return _metrics


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
    attributed, unattributed = attribute(env_pk, batch.tracking)
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
