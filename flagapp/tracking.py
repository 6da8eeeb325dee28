"""``flagapp.track`` / ``flagapp.atrack``: conversions and metric events from Django code.

::

    flagapp.track(request, "purchase")                     # a conversion
    flagapp.track(request, "checkout.latency-ms", 231.5)   # a metric event with a value
    await flagapp.atrack(request, "purchase", details={"order": "A-17"})

The event is the OpenFeature ``client.track`` of the Django side: it is validated exactly as
an event posted to ``POST /sdk/v1/events`` (``flagapp.sdk.events.validate_tracking``: the
event name, a finite ``value``, ``details`` at most 8 KiB and ``SDK_JSON_MAX_DEPTH`` deep;
a bad one raises ``ValueError`` naming the field, since it is a programming error), then
buffered in memory by :mod:`flagapp.exposures` and stored as an ``SdkEvent`` with the
exposures, where experiments (conversion events) and the stored-events guardrails (error
and event rates, latency percentiles of ``value``) read it. The user is the context's
``targetingKey``, built from the request exactly as ``flagapp.evaluate`` builds it (once
per request), so an event joins the user's exposures. No query on the request path, except
what building the request's context may need the first time (``atrack`` then builds it in a
worker thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asgiref.sync import sync_to_async

from flagapp import exposures
from flagapp.evaluation import cache
from flagapp.evaluation.context import CONTEXT_ATTR, to_context

__all__ = ["atrack", "track"]


def _context_of(request_or_context: Any) -> Mapping[str, Any]:
    if request_or_context.__class__ is dict:
        return request_or_context  # type: ignore[no-any-return,unused-ignore]
    ctx = getattr(request_or_context, CONTEXT_ATTR, None)
    if ctx is None:
        ctx = to_context(request_or_context)
    if ctx is None:
        raise ValueError(
            f"request_or_context: cannot build a context from {type(request_or_context).__name__}"
        )
    return ctx


def track(
    request_or_context: Any,
    event: str,
    value: float | None = None,
    *,
    details: Mapping[str, Any] | None = None,
    environment: str | None = None,
) -> None:
    """Record tracking event ``event`` for the user of ``request_or_context``.

    ``value`` is the event's number (a latency, an amount), ``details`` free attributes.
    Raises ``ValueError`` naming the field for an invalid event; never queries once the
    request's context is built (the event is written after the response)."""
    from flagapp.sdk.events import EventError, validate_tracking

    if event == "":
        raise ValueError("event: must not be empty")
    ctx = _context_of(request_or_context)
    wire: dict[str, Any] = {"kind": "tracking", "name": event, "value": value}
    if details is not None:
        wire["details"] = dict(details)
    tk = ctx.get("targetingKey")
    if tk is not None:
        wire["targetingKey"] = tk
    try:
        stored = validate_tracking(wire)
    except EventError as exc:
        name = {"name": "event", "key": "event"}.get(exc.field, exc.field)
        raise ValueError(f"{name}: {exc.message}") from None
    env = environment or cache._default_env or cache.default_environment()
    exposures.add_tracking(env, stored)


async def atrack(
    request_or_context: Any,
    event: str,
    value: float | None = None,
    *,
    details: Mapping[str, Any] | None = None,
    environment: str | None = None,
) -> None:
    """``track`` for async code: inline when the context is at hand, else in a thread
    (building a request's context may query the database)."""
    ready = request_or_context.__class__ is dict or (
        hasattr(request_or_context, CONTEXT_ATTR) or not hasattr(request_or_context, "META")
    )
    if ready:
        track(request_or_context, event, value, details=details, environment=environment)
        return
    await sync_to_async(track)(
        request_or_context, event, value, details=details, environment=environment
    )
