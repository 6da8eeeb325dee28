"""Validation and storage of ``POST /sdk/v1/events`` batches (docs/protocol.md).

Why validate per event rather than reject a batch: an SDK batches for minutes; one bad
event (an oversized payload, a bad timestamp, a ``NaN``, a NUL character, nesting deeper
than ``SDK_JSON_MAX_DEPTH``) should not drop the good ones, and must never make the batch
fail half-stored. The batch itself is refused only when it is not JSON, not shaped like a
batch (400) or too big (413). Each rejected event is reported with its index, the field
and a message.

Exactly once: a batch is stored in one transaction (events, sampled contexts, evaluation
counts), and when the SDK sends ``X-Flagapp-Batch-Id`` an ``SdkEventBatch`` row unique per
(SDK key, batch id) is inserted in the same transaction: a retried batch (the SDK did not
get the answer) is not stored again and gets the first answer.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from flagapp import metrics
from flagapp.conf import settings
from flagapp.sdk import limits

logger = logging.getLogger("flagapp.sdk")

__all__ = [
    "Batch",
    "EventError",
    "Invalid",
    "TooMany",
    "parse_batch",
    "store",
    "valid_batch_id",
    "validate_tracking",
    "write_events",
]

_MAX_KEY = 200
_MAX_DATA_BYTES = 8192
_KINDS = ("tracking", "exposure", "evaluation")
#: Spellings the published Python provider uses (docs/protocol.md), mapped to ours.
_KIND_ALIASES = {"track": "tracking"}


class Invalid(Exception):
    """The body is not a batch (400)."""


class TooMany(Exception):
    """More events than ``EVENTS_MAX_BATCH`` (413)."""


class EventError(ValueError):
    """One event is invalid: ``field`` (a path inside the event) and the message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def valid_batch_id(value: str) -> bool:
    """1 to 64 characters of ``[A-Za-z0-9_-]`` (a uuid4 hex fits)."""
    return _BATCH_ID.fullmatch(value) is not None


@dataclass(slots=True)
class Batch:
    tracking: list[dict[str, Any]] = field(default_factory=list)
    exposures: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    #: (index, field, message) of each rejected event
    rejected: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return len(self.tracking) + len(self.exposures) + len(self.evaluations)

    def answer(self) -> dict[str, Any]:
        """The 202 body: counts, and one error per rejected event."""
        return {
            "accepted": self.accepted,
            "rejected": len(self.rejected),
            "errors": [
                {"index": index, "field": name, "message": message}
                for index, name, message in self.rejected
            ],
        }


def _timestamp(value: Any) -> datetime:
    """ISO-8601 with an offset, or epoch milliseconds; absent means now."""
    if value is None:
        return timezone.now()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(value / 1000.0, tz=UTC)
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    raise EventError("timestamp", "must be ISO-8601 with an offset or epoch milliseconds")


def _string(event: dict[str, Any], *names: str, required: bool = False) -> str:
    """The first of ``names`` present (alternative spellings of one field)."""
    name = next((n for n in names if event.get(n) is not None), names[0])
    value = event.get(name)
    if value is None:
        if required:
            raise EventError(names[0], "is required")
        return ""
    if not isinstance(value, str) or len(value) > _MAX_KEY:
        raise EventError(name, f"must be a string of at most {_MAX_KEY} characters")
    return value


def _object(event: dict[str, Any], *names: str) -> dict[str, Any]:
    name = next((n for n in names if event.get(n) is not None), names[0])
    value = event.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventError(name, "must be an object")
    if len(json.dumps(value, default=str)) > _MAX_DATA_BYTES:
        raise EventError(name, f"is larger than {_MAX_DATA_BYTES} bytes")
    return value


def _targeting_key(event: dict[str, Any], context: dict[str, Any]) -> str:
    value = event.get("targetingKey", context.get("targetingKey"))
    return value[:_MAX_KEY] if isinstance(value, str) else ""


def _one(event: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(event, dict):
        raise EventError("", "an event must be an object")
    problem = limits.find_problem(event, "")
    if problem is not None:
        raise EventError(*problem)
    kind = event.get("kind")
    kind = _KIND_ALIASES.get(kind, kind) if isinstance(kind, str) else kind
    if kind not in _KINDS:
        raise EventError("kind", f"must be one of {', '.join(_KINDS)}")
    context = _object(event, "context")
    at = _timestamp(event.get("timestamp"))
    if kind == "tracking":
        value = event.get("value")
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise EventError("value", "must be a finite number")
        return kind, {
            "key": _string(event, "name", "key", required=True),
            "value": None if value is None else float(value),
            "data": _object(event, "details", "data"),
            "targeting_key": _targeting_key(event, context),
            "timestamp": at,
            "context": context,
        }
    flag_key = _string(event, "flag", "flagKey", required=True)
    variant = event.get("variant")
    if variant is not None and not isinstance(variant, str):
        raise EventError("variant", "must be a string or null")
    out = {
        "flag_key": flag_key,
        "data": _object(event, "details", "data"),
        "variant": (variant or "")[:_MAX_KEY],
        "targeting_key": _targeting_key(event, context),
        "timestamp": at,
        "context": context,
    }
    if kind == "evaluation":
        count = event.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10**9:
            raise EventError("count", "must be a positive integer")
        out["count"] = count
    return kind, out


def validate_tracking(event: dict[str, Any]) -> dict[str, Any]:
    """One tracking event in the wire shape (``{"kind": "tracking", "name", "value",
    "details", "targetingKey", "timestamp"}``) validated as a posted one would be; the
    stored shape, or ``EventError`` (a ``ValueError``) naming the field. ``flagapp.track``
    validates with this, so a Django view and an SDK are held to the same rules."""
    kind, out = _one(event)
    if kind != "tracking":
        raise EventError("kind", "must be tracking")
    return out


def parse_batch(body: bytes, *, max_events: int) -> Batch:
    try:
        doc = limits.loads(body or b"null")
    except limits.JsonError as exc:
        raise Invalid(f"body is {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise Invalid('body must be an object with an "events" list')
    items = doc["events"]
    if len(items) > max_events:
        raise TooMany(
            f"{len(items)} events in one batch; EVENTS_MAX_BATCH allows at most {max_events}"
        )
    batch = Batch()
    for index, item in enumerate(items):
        try:
            kind, event = _one(item)
        except EventError as exc:
            batch.rejected.append((index, exc.field, exc.message))
            continue
        {"tracking": batch.tracking, "exposure": batch.exposures, "evaluation": batch.evaluations}[
            kind
        ].append(event)
    return batch


def store(
    env_key: str,
    batch: Batch,
    *,
    key_id: int | None = None,
    source: str = "",
    batch_id: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store a validated batch in one transaction; return ``(answer, replayed)``.

    With ``batch_id`` (and the SDK key's ``key_id``) a batch already stored is not stored
    again: ``replayed`` is true and the answer is the one given the first time.
    """
    from flagapp.models import SdkEventBatch

    answer = batch.answer()
    with transaction.atomic():
        if batch_id is not None and key_id is not None:
            try:
                with transaction.atomic():
                    SdkEventBatch.objects.create(
                        sdk_key_id=key_id,
                        batch_id=batch_id,
                        accepted=answer["accepted"],
                        rejected=answer["rejected"],
                        errors=answer["errors"],
                    )
            except IntegrityError:
                first = SdkEventBatch.objects.get(sdk_key_id=key_id, batch_id=batch_id)
                replay = {"accepted": first.accepted, "rejected": first.rejected}
                return {**replay, "errors": list(first.errors)}, True
        _write(env_key, batch, source)
    if batch_id is not None:
        _maybe_prune()
    return answer, False


def _write(env_key: str, batch: Batch, source: str) -> None:
    """Events, counts and sampled contexts (inside the caller's transaction)."""
    from flagapp import sampling

    write_events(env_key, batch)
    counts: dict[str, tuple[int, datetime]] = {}
    for e in batch.exposures + batch.evaluations:
        n, last = counts.get(e["flag_key"], (0, e["timestamp"]))
        counts[e["flag_key"]] = (n + e.get("count", 1), max(last, e["timestamp"]))
    samples = [
        (e["flag_key"], e["variant"], e["context"], e["timestamp"])
        for e in batch.exposures + batch.evaluations
        if e["context"]
    ]
    if source:
        sampling.record(env_key, samples, counts=counts, source=source)
    else:
        sampling.record(env_key, samples, counts=counts)


def write_events(env_key: str, batch: Batch) -> None:
    """The ``SdkEvent`` rows of a batch's tracking events and exposures, nothing else.

    The one writer of ``SdkEvent``: SDK batches (:func:`store`) and this server's own
    exposures and ``flagapp.track`` events (``flagapp.exposures.flush``, whose evaluation
    counts ``flagapp.sampling`` already keeps) both come through here."""
    from flagapp.models import Environment, SdkEvent

    env = Environment.objects.only("id").get(key=env_key)
    rows = [
        SdkEvent(
            environment_id=env.pk,
            kind=SdkEvent.KIND_TRACKING,
            key=e["key"],
            value=e["value"],
            data=e["data"],
            targeting_key=e["targeting_key"],
            timestamp=e["timestamp"],
        )
        for e in batch.tracking
    ]
    rows += [
        SdkEvent(
            environment_id=env.pk,
            kind=SdkEvent.KIND_EXPOSURE,
            key=e["flag_key"],
            flag_key=e["flag_key"],
            variant=e["variant"],
            data=e["data"],
            targeting_key=e["targeting_key"],
            timestamp=e["timestamp"],
        )
        for e in batch.exposures
    ]
    if rows:
        SdkEvent.objects.bulk_create(rows, batch_size=500)
    metrics.events_stored(env.pk, env_key, batch)  # counted once, when this commits


_PRUNE_EVERY = 3600.0
_pruned_at = 0.0


def _maybe_prune() -> None:
    """Delete batch ids older than ``EVENTS_BATCH_ID_RETENTION`` (at most hourly per
    process; best effort)."""
    global _pruned_at
    from flagapp.models import SdkEventBatch

    now = time.monotonic()
    if _pruned_at and now - _pruned_at < _PRUNE_EVERY:
        return
    _pruned_at = now
    cutoff = timezone.now() - timedelta(seconds=float(settings.EVENTS_BATCH_ID_RETENTION))
    try:
        SdkEventBatch.objects.filter(received_at__lt=cutoff).delete()
    except DatabaseError:
        logger.warning("could not prune old event batch ids", exc_info=True)
