"""Tracking and exposure events: a bounded buffer drained by one background thread.

Why this shape: ``track()`` and sampled exposures happen on request paths, so recording must
never block or grow without bound. Recording appends a small tuple to a ``deque`` with a
``maxlen`` (when full the oldest event falls out and is counted in ``dropped``); timestamps
are taken as floats and everything is turned into JSON on the sender thread. The sender POSTs
batches of up to ``batch_size`` to ``/sdk/v1/events`` (docs/protocol.md) every
``flush_interval`` seconds, or sooner when a batch is full. ``close()`` flushes what is left,
bounded by ``flush_timeout``.

Delivery is at most once: a batch the server refuses as malformed (400) is dropped and
counted; one over the server's limits (413) is split in halves and resent; a batch that fails
for a transient reason (refused, 5xx, 429) is put back at the front of the buffer and retried
with backoff — still bounded by ``capacity``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from openfeature_provider.exceptions import SourceError, UnexpectedResponse

__all__ = ["EventBuffer", "EventSender", "encode_events"]

logger = logging.getLogger("flagapp.provider")

# (kind, flag_or_name, variant, value, context, details, timestamp)
Event = tuple[str, str, str | None, Any, Mapping[str, Any], Mapping[str, Any] | None, float]


class EventBuffer:
    """Bounded FIFO of events; the oldest is dropped (and counted) when full."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._events: deque[Event] = deque(maxlen=capacity)
        self._lock = threading.Lock()  # held for an append: never contended for long
        self.dropped = 0
        self.recorded = 0
        self.batch_ready = threading.Event()
        self.batch_size = capacity

    def __len__(self) -> int:
        return len(self._events)

    def add(self, event: Event) -> None:
        with self._lock:
            if len(self._events) == self.capacity:
                self.dropped += 1
            self._events.append(event)
            self.recorded += 1
            full = len(self._events) >= self.batch_size
        if full:
            self.batch_ready.set()

    def take(self, n: int) -> list[Event]:
        with self._lock:
            count = min(n, len(self._events))
            return [self._events.popleft() for _ in range(count)]

    def put_back(self, events: list[Event]) -> None:
        """Return an unsent batch to the front; what no longer fits is dropped and counted."""
        with self._lock:
            room = self.capacity - len(self._events)
            keep = events[-room:] if room > 0 else []
            self.dropped += len(events) - len(keep)
            self._events.extendleft(reversed(keep))


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def encode_events(events: list[Event]) -> bytes:
    """The POST body: ``{"events": [...]}`` as documented in docs/protocol.md."""
    out = []
    for kind, key, variant, value, context, details, ts in events:
        item: dict[str, Any] = {"kind": kind, "context": context, "timestamp": _iso(ts)}
        if kind == "exposure":
            item["flag"] = key
            item["variant"] = variant
            item["value"] = value
        else:
            item["name"] = key
            if value is not None:
                item["value"] = value
        item["details"] = dict(details) if details else {}
        out.append(item)
    return json.dumps({"events": out}, separators=(",", ":"), default=_json_default).encode()


class EventSender:
    """The background thread that drains an EventBuffer into ``post(body) -> accepted``."""

    def __init__(
        self,
        buffer: EventBuffer,
        post: Callable[[bytes], int],
        *,
        batch_size: int = 500,
        flush_interval: float = 5.0,
        flush_timeout: float = 5.0,
        backoff_max: float = 60.0,
    ) -> None:
        self.buffer = buffer
        self.buffer.batch_size = batch_size
        self._post = post
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.flush_timeout = flush_timeout
        self.backoff_max = backoff_max
        self.sent = 0
        self.rejected = 0
        self.failed_batches = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="flagapp-events", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        delay = self.flush_interval
        while not self._stop.is_set():
            self.buffer.batch_ready.wait(delay)
            self.buffer.batch_ready.clear()
            if self._stop.is_set():
                break
            ok = self._drain(deadline=None)
            delay = self.flush_interval if ok else min(self.backoff_max, max(delay, 0.5) * 2)

    def _drain(self, deadline: float | None) -> bool:
        """Send full batches until the buffer is empty; False after a transient failure."""
        while len(self.buffer):
            if deadline is not None and time.monotonic() > deadline:
                return False
            unsent = self._send(self.buffer.take(self.batch_size))
            if unsent:
                self.failed_batches += 1
                self.buffer.put_back(unsent)
                return False
        return True

    def _send(self, batch: list[Event]) -> list[Event]:
        """POST ``batch``; returns what is left to retry after a transient failure.

        A 413 (batch or body over the server's limits) splits the batch in halves and sends
        each; a 400 or a single event still over a limit is dropped and counted in
        ``rejected`` (retrying the same bytes cannot succeed).
        """
        try:
            self.sent += self._post(encode_events(batch))
            return []
        except UnexpectedResponse as exc:
            if exc.status == 413 and len(batch) > 1:
                mid = len(batch) // 2
                rest = self._send(batch[:mid])
                return rest + batch[mid:] if rest else self._send(batch[mid:])
            self.rejected += len(batch)
            logger.warning("flagapp: %d events rejected by the server: %s", len(batch), exc)
            return []
        except SourceError as exc:
            logger.info("flagapp: sending events failed, will retry: %s", exc)
            return batch
        except Exception:
            self.rejected += len(batch)
            logger.exception("flagapp: could not send %d events", len(batch))
            return []

    def close(self) -> None:
        """Stop the thread and flush what is buffered (bounded by ``flush_timeout``)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self.buffer.batch_ready.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self.flush_timeout + 5)
        self._drain(deadline=time.monotonic() + self.flush_timeout)
