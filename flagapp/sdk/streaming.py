"""The one server-sent-events loop behind ``/sdk/v1/stream`` and ``/ofrep/v1/event-stream``.

Both streams do the same thing around different events: subscribe to the notifier, send a
``retry:`` hint and what the client must know on connect, then one event per new snapshot
version, and between announcements a heartbeat that also re-checks the key (a revoked key
ends the stream) and the current version (an announcement lost on the way — no Redis, a
dropped subscription — costs one heartbeat interval, never a stale client). The stream ends
after ``STREAM_MAX_SECONDS`` so load rebalances; clients reconnect.

What differs is a :class:`Stream` subclass: ``first`` (the events on connect), ``event``
(one new version) and ``still_valid`` (the key check). ``flagapp.sdk.views`` (snapshot
announcements, deltas inline) and ``flagapp.sdk.ofrep`` (``refetchEvaluation``) define one
each.

Cost per change and stream: the notifier wakes each stream's future directly (one
thread-safe call per event loop, ``notifier.Subscription``), and the event bytes are built
once per change and shared by every stream (the subclasses cache them), so a change costs a
stream one event-loop step and one write.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from flagapp.conf import settings
from flagapp.sdk import notifier
from flagapp.sdk.rulesets import aget_ruleset

__all__ = ["HEARTBEAT", "Stream", "run"]

HEARTBEAT = b": heartbeat\n\n"


class Stream:
    """One client's stream of ``environment``; subclasses say what its events are."""

    def __init__(self, environment: str) -> None:
        self.environment = environment

    async def ruleset(self) -> Any:
        """The environment's current ruleset (this process's copy, fresh within the check
        interval; a worker thread when it must be loaded)."""
        return await aget_ruleset(self.environment)

    async def first(self, rs: Any) -> bytes:
        """What the client gets on connect, ``rs`` being the current ruleset (or None)."""
        raise NotImplementedError

    async def event(self, version: int, etag: str, ann: notifier.Announcement | None) -> bytes:
        """The event announcing ``version`` (``ann``: the notifier's announcement, None
        when the heartbeat's own check found the version)."""
        raise NotImplementedError

    async def still_valid(self) -> bool:
        """Whether the stream's key is still active (checked at each heartbeat)."""
        raise NotImplementedError

    def opened(self) -> None:
        """Called once the stream is subscribed (metrics)."""

    def closed(self) -> None:
        """Called when the stream ends, however it ends (metrics)."""


async def run(stream: Stream) -> AsyncIterator[bytes]:
    """The events of ``stream`` until it ends (key revoked, ``STREAM_MAX_SECONDS``, the
    client gone)."""
    env = stream.environment
    sub = notifier.subscribe(env)
    heartbeat = max(0.05, float(settings.STREAM_HEARTBEAT_SECONDS))
    max_seconds = float(settings.STREAM_MAX_SECONDS)
    deadline = time.monotonic() + max_seconds if max_seconds > 0 else None
    stream.opened()
    try:
        yield f"retry: {int(settings.STREAM_RETRY_MS)}\n\n".encode()
        rs = await stream.ruleset()
        last = int(rs.version) if rs is not None else -1
        yield await stream.first(rs)
        while deadline is None or time.monotonic() < deadline:
            timeout = heartbeat
            if deadline is not None:
                timeout = max(0.01, min(heartbeat, deadline - time.monotonic()))
            ann = await sub.next(timeout)
            if ann is None:
                # A key revoked while its stream is open: end the stream; the reconnect is
                # refused (401).
                if not await stream.still_valid():
                    return
                # No announcement: say we are alive, and check the version ourselves in
                # case an announcement was lost.
                rs = await stream.ruleset()
                if rs is not None and int(rs.version) > last:
                    last = int(rs.version)
                    yield await stream.event(last, rs.etag, None)
                else:
                    yield HEARTBEAT
                continue
            if ann.version > last:
                last = ann.version
                yield await stream.event(ann.version, ann.etag, ann)
    finally:
        notifier.unsubscribe(sub)
        stream.closed()
