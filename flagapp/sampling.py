"""A bounded, sampled record of recent evaluation contexts, and evaluation counts.

Two producers feed it: in-process evaluations (``flagapp.evaluate`` calls :func:`note` on
every evaluation, OFREP calls :func:`offer`) and SDKs through ``POST /sdk/v1/events``
(:func:`record`). Two readers use it: the blast-radius preview (:func:`recent_contexts`) and
the stale-flag report (``FlagEvaluationStat`` rows: count and last-evaluated time per flag
and environment).

Why buffered: :func:`offer` runs inside every flag check, so it only touches memory (a
counter and, for a sampled share ``CONTEXT_SAMPLE_RATE``, a bounded buffer). The buffer is
written to the database by :func:`flush`, which :func:`offer` triggers at most every
``SAMPLING_FLUSH_SECONDS`` (outside an event loop only) and which a periodic task may call.
Nothing here ever raises into the caller: losing a sample is better than failing a request.

The stored sample is bounded per environment and source: in-process evaluations keep at
most ``CONTEXT_SAMPLE_SIZE`` rows, each SDK key at most its share of it
(``BLAST_RADIUS_MAX_SOURCE_SHARE``), so one key posting many crafted exposures cannot push
the server's own samples out (a write deletes the oldest rows of its source beyond the
bound). Every row carries its source (``"in-process"`` or ``"sdk:<public id>"``) and its
targeting key; :func:`preview_sample` deduplicates per targeting key, caps each SDK key's
share and can be restricted to trusted sources (``BLAST_RADIUS_SOURCES``).

Statistics are never silently lost: a context the database could not store (``NaN``, a NUL
character, a value JSON cannot encode, nesting deeper than ``SDK_JSON_MAX_DEPTH``) loses its
sample only (counted in :func:`dropped_samples`), never the evaluation counts; a flush that
fails (database down) puts its counts back for the next flush.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from flagapp.conf import settings

__all__ = [
    "IN_PROCESS",
    "PreviewSample",
    "Sample",
    "dropped_samples",
    "evaluation_stats",
    "evaluation_totals",
    "flush",
    "fold_counts",
    "note",
    "offer",
    "on_request_finished",
    "pending_counts",
    "preview_sample",
    "recent_contexts",
    "record",
    "reset",
]

logger = logging.getLogger("flagapp.sampling")

# Contexts buffered per process between flushes, at most (the oldest are dropped).
_BUFFER_MAX = 5000

#: The source of contexts from this server's own evaluations (in-process and OFREP).
IN_PROCESS = "in-process"


@dataclass(frozen=True, slots=True)
class Sample:
    environment_key: str
    flag_key: str
    variant: str
    context: Mapping[str, Any]
    at: datetime
    source: str = IN_PROCESS


_lock = threading.Lock()
_buffer: deque[Sample] = deque(maxlen=_BUFFER_MAX)
_counts: dict[tuple[str, str], list[Any]] = {}  # (env, flag) -> [count, last datetime]
_last_flush = time.monotonic()
_flushing = threading.Lock()
_dropped = 0  # samples dropped because the database could not store them


def offer(env_key: str, flag_key: str, context: Mapping[str, Any] | None, variant: Any) -> None:
    """Note one evaluation (:func:`note`), then flush if one is due (outside an event loop)."""
    note(env_key, flag_key, context, variant)
    if time.monotonic() - _last_flush > float(settings.SAMPLING_FLUSH_SECONDS):
        _maybe_flush_inline()


def note(env_key: str, flag_key: str, context: Mapping[str, Any] | None, variant: Any) -> None:
    """Note one evaluation in memory only, never a query: ``flagapp.evaluate``'s hot path
    (its buffer is written by :func:`flush` after the response, :func:`on_request_finished`)."""
    try:
        now = timezone.now()
        pair = (env_key, flag_key)
        slot = _counts.get(pair)
        if slot is None:
            with _lock:
                slot = _counts.setdefault(pair, [0, now])
        slot[0] += 1  # a lost increment under a thread race is acceptable for a statistic
        slot[1] = now
        if context and random.random() < float(settings.CONTEXT_SAMPLE_RATE):
            _buffer.append(Sample(env_key, flag_key, str(variant or ""), dict(context), now))
    except Exception:  # pragma: no cover - never fail an evaluation for a statistic
        logger.exception("flagapp.sampling.note failed")


def record(
    env_key: str,
    samples: Iterable[tuple[str, str, Mapping[str, Any] | None, datetime]],
    *,
    counts: Mapping[str, tuple[int, datetime]] | None = None,
    source: str = IN_PROCESS,
) -> None:
    """Store contexts and counts reported by an SDK (already validated) right away.

    ``samples`` are ``(flag_key, variant, context, at)``; ``counts`` maps a flag key to
    ``(evaluations, last_evaluated_at)``; ``source`` is ``"sdk:<public id>"`` for events.
    Database errors propagate (the events view stores a batch in one transaction).
    """
    rows = [
        Sample(env_key, flag_key, variant, dict(ctx), at, source)
        for flag_key, variant, ctx, at in samples
        if ctx
    ]
    _write(rows, {(env_key, k): [n, at] for k, (n, at) in (counts or {}).items()})


def _maybe_flush_inline() -> None:
    # Inside an event loop a query would block it (and Django forbids it); the loop's next
    # sync caller or the periodic task will flush.
    try:
        asyncio.get_running_loop()
        return
    except RuntimeError:
        pass
    flush()


def on_request_finished(**kwargs: Any) -> None:
    """``request_finished`` receiver: the flush point of async views (OFREP under ASGI),
    which cannot write from their event loop. Django runs sync receivers in a thread."""
    if time.monotonic() - _last_flush > float(settings.SAMPLING_FLUSH_SECONDS):
        flush()


def connect() -> None:
    from django.core.signals import request_finished

    request_finished.connect(on_request_finished, dispatch_uid="flagapp.sampling.flush")


def _take() -> tuple[list[Sample], dict[tuple[str, str], list[Any]]]:
    global _last_flush, _counts
    with _lock:
        samples = list(_buffer)
        _buffer.clear()
        counts, _counts = _counts, {}
        _last_flush = time.monotonic()
    return samples, counts


def flush() -> int:
    """Write buffered samples and counts of this process; return how many samples.

    All or nothing, in one transaction: when the write fails (database down) the counts are
    put back for the next flush (the samples are dropped: they are a sample).
    """
    from django.db import transaction

    if not _flushing.acquire(blocking=False):
        return 0
    try:
        samples, counts = _take()
        if not (samples or counts):
            return 0
        try:
            with transaction.atomic():
                written = _write(samples, counts)
        except Exception:
            _put_back(counts)
            logger.exception(
                "flagapp.sampling.flush failed; %d samples dropped, counts kept for the next flush",
                len(samples),
            )
            return 0
        return written
    finally:
        _flushing.release()


def _put_back(counts: Mapping[tuple[str, str], list[Any]]) -> None:
    with _lock:
        for pair, (n, at) in counts.items():
            slot = _counts.setdefault(pair, [0, at])
            slot[0] += n
            slot[1] = max(slot[1], at)


def _storable(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """The context as the database will store it, or None when it cannot be stored."""
    from flagapp.sdk.limits import find_problem

    try:
        plain = json.loads(json.dumps(dict(context), allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return None
    if find_problem(plain, "") is not None:
        return None
    return dict(plain)


def dropped_samples() -> int:
    """Samples this process dropped because the database could not store their context."""
    return _dropped


def _targeting_key(context: Mapping[str, Any]) -> str:
    value = context.get("targetingKey")
    return value[:200] if isinstance(value, str) else ""


def _write(samples: list[Sample], counts: Mapping[tuple[str, str], list[Any]]) -> int:
    global _dropped
    from flagapp.models import ContextSample, Environment

    env_keys = {s.environment_key for s in samples} | {env for env, _ in counts}
    if not env_keys:
        return 0
    env_ids = dict(Environment.objects.filter(key__in=env_keys).values_list("key", "id"))
    rows = []
    for s in samples:
        if s.environment_key not in env_ids:
            continue
        context = _storable(s.context)
        if context is None:
            _dropped += 1
            continue
        rows.append(
            ContextSample(
                environment_id=env_ids[s.environment_key],
                context=context,
                flag_key=s.flag_key[:200],
                variant=s.variant[:200],
                targeting_key=_targeting_key(context),
                source=s.source[:40],
                recorded_at=s.at,
            )
        )
    fold_counts(
        {
            (env_ids[env], flag): (int(n), at)
            for (env, flag), (n, at) in counts.items()
            if env in env_ids
        }
    )
    if rows:
        ContextSample.objects.bulk_create(rows)
        _trim({(r.environment_id, r.source) for r in rows})
    return len(rows)


def _source_bound(source: str) -> int:
    size = int(settings.CONTEXT_SAMPLE_SIZE)
    if source == IN_PROCESS:
        return size
    share = float(settings.BLAST_RADIUS_MAX_SOURCE_SHARE)
    return max(1, math.ceil(size * share))


def _trim(pairs: Iterable[tuple[int, str]]) -> None:
    from flagapp.models import ContextSample

    for env_id, source in pairs:
        size = _source_bound(source)
        boundary = (
            ContextSample.objects.filter(environment_id=env_id, source=source)
            .order_by("-id")
            .values_list("id", flat=True)[size : size + 1]
        )
        cutoff = next(iter(boundary), None)
        if cutoff is not None:
            ContextSample.objects.filter(
                environment_id=env_id, source=source, id__lte=cutoff
            ).delete()


def fold_counts(counts: Mapping[tuple[int, str], tuple[int, datetime]]) -> None:
    """Add evaluation counts into ``FlagEvaluationStat``: ``{(env_id, flag): (n, last_at)}``.

    One UPDATE per pair, an INSERT for a pair seen the first time. A periodic task may call
    :func:`flush`, which ends here.
    """
    from django.db import IntegrityError, transaction
    from django.db.models import F
    from django.db.models.functions import Greatest

    from flagapp.models import FlagEvaluationStat

    for (env_id, flag_key), (n, last_at) in counts.items():
        if n <= 0:
            continue
        updated = FlagEvaluationStat.objects.filter(
            environment_id=env_id, flag_key=flag_key
        ).update(count=F("count") + n, last_evaluated_at=Greatest("last_evaluated_at", last_at))
        if updated:
            continue
        try:
            with transaction.atomic():
                FlagEvaluationStat.objects.create(
                    environment_id=env_id, flag_key=flag_key, count=n, last_evaluated_at=last_at
                )
        except IntegrityError:  # another process inserted it meanwhile
            FlagEvaluationStat.objects.filter(environment_id=env_id, flag_key=flag_key).update(
                count=F("count") + n, last_evaluated_at=Greatest("last_evaluated_at", last_at)
            )


def recent_contexts(env_key: str, limit: int = 1000) -> list[dict[str, Any]]:
    """The most recent sampled contexts of ``env_key``, newest first (at most ``limit``).

    Flushes this process's buffer first, so a preview sees what this process just evaluated.
    """
    from flagapp.models import ContextSample

    flush()
    rows = (
        ContextSample.objects.filter(environment__key=env_key)
        .order_by("-id")
        .values_list("context", flat=True)[: max(0, int(limit))]
    )
    return [dict(c) for c in rows]


@dataclass(slots=True)
class PreviewSample:
    """The contexts a blast-radius preview replays, and where they came from."""

    contexts: list[dict[str, Any]]
    #: contexts used per source: {"in-process": n, "sdk:<public id>": m}
    sources: dict[str, int]
    #: None, or the trusted sources the sample was restricted to (BLAST_RADIUS_SOURCES)
    restricted_to: list[str] | None
    #: stored contexts skipped because their targeting key (or, without one, the same
    #: context) was already in the sample
    duplicates: int
    #: stored contexts skipped because their SDK key had reached its share
    capped: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": len(self.contexts),
            "sources": dict(self.sources),
            "restricted_to": None if self.restricted_to is None else list(self.restricted_to),
            "duplicates": self.duplicates,
            "capped": self.capped,
        }


def _trusted_sources() -> list[str] | None:
    conf = settings.BLAST_RADIUS_SOURCES
    if conf is None:
        return None
    out = []
    for item in conf:
        name = str(item)
        out.append(name if name == IN_PROCESS or name.startswith("sdk:") else f"sdk:{name}")
    return out


def preview_sample(env_key: str, limit: int | None = None) -> PreviewSample:
    """The stored sample of ``env_key`` as the blast-radius preview should trust it.

    - Only sources in ``BLAST_RADIUS_SOURCES`` (None: every source).
    - Each targeting key counts once: the server's own (in-process) sample first, then the
      newest. A context without a targeting key is deduplicated on its content.
    - Each SDK key contributes at most ``ceil(BLAST_RADIUS_MAX_SOURCE_SHARE * limit)``
      contexts; the server's own sample is not capped.
    - At most ``limit`` (default ``BLAST_RADIUS_SAMPLE``) contexts.

    Flushes this process's buffer first, so a preview sees what this process just evaluated.
    """
    from flagapp.models import ContextSample

    flush()
    size = int(settings.BLAST_RADIUS_SAMPLE if limit is None else limit)
    per_key = max(1, math.ceil(float(settings.BLAST_RADIUS_MAX_SOURCE_SHARE) * size))
    trusted = _trusted_sources()
    rows = ContextSample.objects.filter(environment__key=env_key)
    if trusted is not None:
        rows = rows.filter(source__in=trusted)
    # In-process rows first (trusted over posted), newest first within each group.
    ordered = sorted(
        rows.order_by("-id").values_list("source", "targeting_key", "context"),
        key=lambda row: row[0] != IN_PROCESS,
    )
    seen: set[str] = set()
    contexts: list[dict[str, Any]] = []
    sources: dict[str, int] = {}
    duplicates = capped = 0
    for source, targeting_key, context in ordered:
        if len(contexts) >= size:
            break
        identity = (
            "k:" + targeting_key
            if targeting_key
            else "c:" + json.dumps(context, sort_keys=True, separators=(",", ":"))
        )
        if identity in seen:
            duplicates += 1
            continue
        if source != IN_PROCESS and sources.get(source, 0) >= per_key:
            capped += 1
            continue
        seen.add(identity)
        contexts.append(dict(context))
        sources[source] = sources.get(source, 0) + 1
    return PreviewSample(contexts, sources, trusted, duplicates, capped)


def evaluation_stats(env_key: str) -> dict[str, tuple[int, datetime | None]]:
    """``{flag_key: (count, last_evaluated_at)}`` of ``env_key`` as stored (after a flush)."""
    from flagapp.models import FlagEvaluationStat

    flush()
    return {
        flag: (count, last)
        for flag, count, last in FlagEvaluationStat.objects.filter(
            environment__key=env_key
        ).values_list("flag_key", "count", "last_evaluated_at")
    }


def evaluation_totals(
    flag_keys: Iterable[str] | None = None,
) -> dict[str, tuple[int, datetime | None]]:
    """``{flag_key: (count, last_evaluated_at)}`` over every environment, as stored: what
    "last evaluated" means for the stale-flag report and the admin (in-process evaluations,
    SDK exposures and evaluation counts, the provider's usage counts all fold into
    ``FlagEvaluationStat``). One aggregate query, for ``flag_keys`` or every flag; no
    flush (callers that need this process's latest counts flush first, as the report does).
    """
    from django.db.models import Max, Sum

    from flagapp.models import FlagEvaluationStat

    rows = FlagEvaluationStat.objects.all()
    if flag_keys is not None:
        keys = list(flag_keys)
        if not keys:
            return {}
        rows = rows.filter(flag_key__in=keys)
    return {
        key: (int(total or 0), last)
        for key, total, last in rows.values("flag_key")
        .annotate(total=Sum("count"), last=Max("last_evaluated_at"))
        .values_list("flag_key", "total", "last")
        .order_by()
    }


def pending_counts() -> dict[tuple[str, str], int]:
    """This process's counts not yet flushed (for tests and diagnostics)."""
    return {pair: int(slot[0]) for pair, slot in list(_counts.items())}


def reset() -> None:
    """Drop everything buffered in this process (tests)."""
    _take()
