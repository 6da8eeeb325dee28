"""Exposures and tracking events of this Django process, stored with the SDKs' events.

Two producers feed it: ``flagapp.evaluate`` (and everything built on it: ``get_value``,
``flag_is_active``, their async twins, ``{% flag %}`` / ``{% flag_value %}``,
``@flag_required``, ``FlagRequiredMixin``) calls :func:`expose` for each evaluation that
served a variant, and ``flagapp.track`` (:mod:`flagapp.tracking`) calls :func:`add_tracking`
for a conversion or a metric event. Both end up as ``SdkEvent`` rows, written by the same
function that stores the batches SDKs post to ``POST /sdk/v1/events``
(``flagapp.sdk.events.write_events``), so experiments and the stored-events guardrail read
one table whichever side of the network the user was evaluated on.

Why buffered: :func:`expose` runs inside every flag check. It only touches memory (a
``random()`` for sampling and an append to a bounded ``deque``; when full the oldest event
is dropped and counted, :func:`stats`). Nothing here queries on the request path: the buffer
is written by :func:`flush`, which runs after responses (the ``request_finished`` receiver,
at most every ``SAMPLING_FLUSH_SECONDS`` or sooner when the buffer is half full), from
``flagapp.flush_usage()`` and from the periodic ``fold_evaluation_counts`` task, like the
evaluation counts of :mod:`flagapp.sampling`.

Exactly once: the events of one flush are taken out of the buffer under a lock (no two
flushers write the same event) and written in one transaction; a failed write (database
down) puts them back in front of the buffer for the next flush, so an event is stored once
or, if the buffer overflows meanwhile, dropped and counted, never twice. Evaluation counts
are not touched here: ``sampling.note`` already counted the evaluation.

Which evaluations are exposures worth a row: by default (``RECORD_EXPOSURES =
"observed"``) only those of flags something reads -- a running experiment, or a rollout with
guardrails that is running or paused, on that flag in that environment. The publisher marks
those flags in the snapshot (flag metadata ``recordExposures: true``, ``observed_flag_ids``
at compile time; an experiment saved or deleted triggers a publish), so the check is a
lookup in the resolution's metadata: still no query on the request path. Every other
evaluation is only counted (:mod:`flagapp.sampling`: the stale report and "last evaluated"),
which is all anything reads of it. ``RECORD_EXPOSURES = True`` records every evaluation that
served a variant (the behaviour before), ``False`` none.

Settings: ``RECORD_EXPOSURES`` (``"observed"``, ``True``, ``False``;
``evaluate(..., record=False)`` is the per-call off-switch), ``EXPOSURE_SAMPLE_RATE``
(share of the recorded evaluations kept) and ``EVENT_BUFFER_SIZE`` (bound of the buffer).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flagapp.conf import settings
from flagapp.documents import OBSERVED, observed_flag_ids

if TYPE_CHECKING:
    from openfeature_provider.engine import Resolution

__all__ = [
    "OBSERVED",
    "add_tracking",
    "connect",
    "expose",
    "flush",
    "observed_flag_ids",
    "pending",
    "reset",
    "sample_rate",
    "stats",
]

logger = logging.getLogger("flagapp.exposures")

#: ``source`` of an exposure recorded by this server (``flagapp.evaluate``); OFREP's is "ofrep".
IN_PROCESS = "in-process"

# (kind, environment, payload, timestamp):
#   ("exposure", env, (the engine's Resolution, the context's targetingKey, source), ts)
#   ("tracking", env, validated event dict (flagapp.sdk.events' shape), ts)
_Item = tuple[str, str, Any, float]

_lock = threading.Lock()
_flushing = threading.Lock()
_buffer: deque[_Item] = deque(maxlen=10_000)
_last_flush = time.monotonic()
_counters = {
    "overflow_dropped": 0,
    "stored": 0,
    "dropped": 0,
    "failed_flushes": 0,
    "unobserved": 0,
}
#: (RECORD_EXPOSURES and EXPOSURE_SAMPLE_RATE as a float, 0.0 when off), or None: re-read.
_rate: float | None = None
#: RECORD_EXPOSURES == "observed": only flags marked OBSERVED in the snapshot are recorded.
_observed_only = True
_random = random.random
_time = time.time


def sample_rate() -> float:
    """The share of evaluations recorded as exposures (0.0 when ``RECORD_EXPOSURES`` is off).

    Cached until ``FLAGAPP`` changes (``setting_changed``): read on every evaluation."""
    global _rate, _observed_only
    rate = _rate
    if rate is None:
        rate = 0.0
        mode = settings.RECORD_EXPOSURES
        if mode:
            rate = min(1.0, max(0.0, float(settings.EXPOSURE_SAMPLE_RATE)))
        _observed_only = mode == "observed"
        _resize(int(settings.EVENT_BUFFER_SIZE))
        _rate = rate
    return rate


def _resize(capacity: int) -> None:
    global _buffer
    capacity = max(1, capacity)
    if _buffer.maxlen != capacity:
        with _lock:
            _buffer = deque(_buffer, maxlen=capacity)


def _append(item: _Item) -> None:
    if _rate is None:
        sample_rate()  # settings changed: re-read them (and the buffer's bound)
    buffer = _buffer
    if len(buffer) == buffer.maxlen:
        _counters["overflow_dropped"] += 1  # the append below pushes the oldest out
    buffer.append(item)


def expose(
    env_key: str,
    res: Resolution,
    context: Mapping[str, Any] | None,
    source: str = IN_PROCESS,
) -> None:
    """Note one exposure in memory (sampled at ``EXPOSURE_SAMPLE_RATE``): never a query.

    ``res`` is the engine's (immutable, pre-built) resolution: flag, variant, reason, rule
    and snapshot version are read from it at flush time, not on the hot path. Only the
    targeting key of the context is kept: the stored event names the user, the variant and
    why, never the other attributes. Under ``RECORD_EXPOSURES = "observed"`` (the default)
    a flag the snapshot does not mark :data:`OBSERVED` is not recorded (only counted)."""
    rate = _rate if _rate is not None else sample_rate()
    if rate <= 0.0:
        return
    if _observed_only and not res.metadata.get(OBSERVED):
        _counters["unobserved"] += 1
        return
    if rate < 1.0 and _random() >= rate:
        return
    buffer = _buffer
    if len(buffer) == buffer.maxlen:
        _counters["overflow_dropped"] += 1  # the append below pushes the oldest out
    buffer.append(
        (
            "exposure",
            env_key,
            (res, context.get("targetingKey") if context else None, source),
            _time(),
        )
    )


def add_tracking(env_key: str, event: dict[str, Any]) -> None:
    """Buffer one tracking event, already validated by ``flagapp.sdk.events`` (memory only)."""
    _append(("tracking", env_key, event, time.time()))


def pending() -> int:
    """Events buffered in this process, not yet stored."""
    return len(_buffer)


def stats() -> dict[str, int]:
    """Counters since start: ``overflow_dropped`` (buffer full), ``stored``, ``dropped`` (an
    environment that does not exist), ``failed_flushes``, ``unobserved`` (evaluations of
    flags nothing reads, counted but not recorded) and ``buffered`` (now)."""
    return {**_counters, "buffered": len(_buffer)}


def _take() -> list[_Item]:
    global _last_flush
    with _lock:
        items = list(_buffer)
        _buffer.clear()
        _last_flush = time.monotonic()
    return items


def _put_back(items: list[_Item]) -> None:
    """Return unstored events to the front of the buffer; what no longer fits is dropped."""
    with _lock:
        room = (_buffer.maxlen or 0) - len(_buffer)
        keep = items[-room:] if room > 0 else []
        _counters["overflow_dropped"] += len(items) - len(keep)
        _buffer.extendleft(reversed(keep))


def _exposure_event(payload: tuple[Resolution, Any, str], ts: float) -> dict[str, Any]:
    res, tk, source = payload
    data: dict[str, Any] = {"reason": res.reason, "ruleId": res.rule_id, "source": source}
    version = res.metadata.get("snapshotVersion")
    if version is not None:
        data["snapshotVersion"] = version
    return {
        "flag_key": res.flag_key,
        "variant": res.variant or "",
        "targeting_key": tk[:200] if isinstance(tk, str) else "",
        "data": data,
        "timestamp": datetime.fromtimestamp(ts, tz=UTC),
        "context": {},
    }


def _experiment_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    """An experiment saved or deleted changes which flags are observed: publish its
    environment (in the same transaction; unchanged content costs a compile, no version)."""
    from flagapp import publishing

    if instance.environment_id:
        publishing.record([instance.environment_id])


def flush() -> int:
    """Store this process's buffered exposures and tracking events; return how many.

    One transaction for all of them; on failure they go back to the buffer (logged)."""
    from django.db import transaction

    from flagapp.models import Environment
    from flagapp.sdk.events import Batch, write_events

    if not _flushing.acquire(blocking=False):
        return 0
    try:
        items = _take()
        if not items:
            return 0
        batches: dict[str, Batch] = {}
        for kind, env_key, payload, ts in items:
            batch = batches.setdefault(env_key, Batch())
            if kind == "exposure":
                batch.exposures.append(_exposure_event(payload, ts))
            else:
                batch.tracking.append({**payload, "timestamp": datetime.fromtimestamp(ts, UTC)})
        try:
            with transaction.atomic():
                known = set(
                    Environment.objects.filter(key__in=list(batches)).values_list("key", flat=True)
                )
                stored = 0
                for env_key, batch in batches.items():
                    if env_key not in known:
                        _counters["dropped"] += batch.accepted
                        logger.warning(
                            "flagapp: %d event(s) dropped: no environment %r",
                            batch.accepted,
                            env_key,
                        )
                        continue
                    write_events(env_key, batch)
                    stored += batch.accepted
        except Exception:
            _counters["failed_flushes"] += 1
            _put_back(items)
            logger.exception(
                "flagapp: storing %d exposure/tracking event(s) failed; kept for the next flush",
                len(items),
            )
            return 0
        _counters["stored"] += stored
        return stored
    finally:
        _flushing.release()


def on_request_finished(**kwargs: Any) -> None:
    """``request_finished`` receiver: flush after the response, at most every
    ``SAMPLING_FLUSH_SECONDS``, or at once when the buffer is half full."""
    buffer = _buffer
    if not buffer:
        return
    due = time.monotonic() - _last_flush > float(settings.SAMPLING_FLUSH_SECONDS)
    if due or len(buffer) * 2 >= (buffer.maxlen or 1):
        flush()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    global _rate
    if setting == "FLAGAPP":
        _rate = None


def connect() -> None:
    """Connect the flush and settings receivers (``AppConfig.ready``)."""
    from django.core.signals import request_finished
    from django.db.models.signals import post_delete, post_save
    from django.test.signals import setting_changed

    from flagapp.models import Experiment

    request_finished.connect(on_request_finished, dispatch_uid="flagapp.exposures.flush")
    for name, signal in (("saved", post_save), ("deleted", post_delete)):
        signal.connect(
            _experiment_saved, sender=Experiment, dispatch_uid=f"flagapp.exposures.{name}"
        )
    setting_changed.connect(_on_setting_changed, dispatch_uid="flagapp.exposures.settings")


def reset() -> None:
    """Drop everything buffered in this process and re-read the settings (tests)."""
    global _rate
    _take()
    _rate = None
