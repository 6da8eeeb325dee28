"""Validation and storage of ``POST /sdk/v1/events`` batches (docs/protocol.md).

Why validate per event rather than reject a batch: an SDK batches for minutes; one bad
event (an oversized payload, a bad timestamp) should not drop the good ones. The batch
itself is refused only when it is not JSON, not shaped like a batch (400) or too big (413).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from flagapp.sdk import limits

__all__ = ["Batch", "Invalid", "TooMany", "parse_batch", "store"]

_MAX_KEY = 200
_MAX_DATA_BYTES = 8192
_KINDS = ("tracking", "exposure", "evaluation")
#: Spellings the published Python provider uses (docs/protocol.md), mapped to ours.
_KIND_ALIASES = {"track": "tracking"}


class Invalid(Exception):
    """The body is not a batch (400)."""


class TooMany(Exception):
    """More events than ``EVENTS_MAX_BATCH`` (413)."""


@dataclass(slots=True)
class Batch:
    tracking: list[dict[str, Any]] = field(default_factory=list)
    exposures: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)


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
    raise ValueError("timestamp must be ISO-8601 with an offset or epoch milliseconds")


def _string(event: dict[str, Any], *names: str, required: bool = False) -> str:
    """The first of ``names`` present (alternative spellings of one field)."""
    name = next((n for n in names if event.get(n) is not None), names[0])
    value = event.get(name)
    if value is None:
        if required:
            raise ValueError(f"{names[0]} is required")
        return ""
    if not isinstance(value, str) or len(value) > _MAX_KEY:
        raise ValueError(f"{name} must be a string of at most {_MAX_KEY} characters")
    return value


def _object(event: dict[str, Any], *names: str) -> dict[str, Any]:
    name = next((n for n in names if event.get(n) is not None), names[0])
    value = event.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object")
    if len(json.dumps(value, default=str)) > _MAX_DATA_BYTES:
        raise ValueError(f"{name} is larger than {_MAX_DATA_BYTES} bytes")
    return value


def _targeting_key(event: dict[str, Any], context: dict[str, Any]) -> str:
    value = event.get("targetingKey", context.get("targetingKey"))
    return value[:_MAX_KEY] if isinstance(value, str) else ""


def _one(event: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(event, dict):
        raise ValueError("an event must be an object")
    kind = event.get("kind")
    kind = _KIND_ALIASES.get(kind, kind) if isinstance(kind, str) else kind
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}")
    context = _object(event, "context")
    at = _timestamp(event.get("timestamp"))
    if kind == "tracking":
        value = event.get("value")
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError("value must be a finite number")
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
        raise ValueError("variant must be a string or null")
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
            raise ValueError("count must be a positive integer")
        out["count"] = count
    return kind, out


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
        except ValueError as exc:
            batch.rejected.append((index, str(exc)))
            continue
        {"tracking": batch.tracking, "exposure": batch.exposures, "evaluation": batch.evaluations}[
            kind
        ].append(event)
    return batch


def store(env_key: str, batch: Batch) -> int:
    """Store tracking and exposure events, feed the context sample and evaluation counts."""
    from flagapp import sampling
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
    counts: dict[str, tuple[int, datetime]] = {}
    for e in batch.exposures + batch.evaluations:
        n, last = counts.get(e["flag_key"], (0, e["timestamp"]))
        counts[e["flag_key"]] = (n + e.get("count", 1), max(last, e["timestamp"]))
    samples = [
        (e["flag_key"], e["variant"], e["context"], e["timestamp"])
        for e in batch.exposures + batch.evaluations
        if e["context"]
    ]
    sampling.record(env_key, samples, counts=counts)
    return len(batch.tracking) + len(batch.exposures) + len(batch.evaluations)
