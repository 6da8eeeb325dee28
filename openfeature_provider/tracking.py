"""Tracking and exposure events: a bounded buffer drained by one background thread.

Why this shape: ``track()`` and sampled exposures happen on request paths, so recording must
never block or grow without bound. Recording appends a small tuple to a ``deque`` with a
``maxlen`` (when full the oldest event falls out and is counted in ``dropped``); timestamps
are taken as floats and everything is turned into JSON on the sender thread. The sender POSTs
batches of up to ``batch_size`` to ``/sdk/v1/events`` (docs/protocol.md) every
``flush_interval`` seconds, or sooner when a batch is full. ``close()`` flushes what is left,
bounded by ``flush_timeout``.

Batches (issue 10 item 5):

- Each batch gets an id, ``uuid4().hex``, sent as ``X-Flagapp-Batch-Id``; the body is encoded
  once, so every retry of the batch carries the same id and the same bytes and the server
  stores it once however often it is resent.
- Events are encoded strictly (``allow_nan=False``): an event holding NaN, Infinity, a NUL
  character (in a value or a key), or nesting too deep to encode is dropped before sending and
  counted in ``invalid_events``; the rest of its batch goes.
- A transient failure (refused, timed out, 5xx, 429, a rejected key) retries the same batch
  with exponential backoff (``retry_base`` doubling, equal jitter, at most ``backoff_max``;
  at least a 429's Retry-After), at most ``max_attempts`` times; then it is dropped and
  counted. A batch the server refuses as such (4xx other than 429; 413 for a single event) is
  dropped at once. Either way later batches are never blocked. A 413 for several events
  splits the batch in halves (new ids: the refused batch was not stored).
- ``stats()`` (and ``FlagappProvider.tracking_stats()``) exposes every counter.

Usage counts (issue 14 part 2): a :class:`UsageCounter` adds one to a ``(flag, variant)``
slot per evaluation (no context, nothing that names a user). Every ``usage_interval``
seconds, and on ``close()``, the sender moves the counts into the buffer as ``evaluation``
events (``{"kind": "evaluation", "flag", "variant", "count", "context": {}}``), so they
travel in ordinary batches: same batch id on every retry, stored once by the server, which
folds them into the stale-flag report's counts and "last evaluated" times.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from openfeature_provider.exceptions import (
    RateLimited,
    SourceError,
    UnexpectedResponse,
)

__all__ = [
    "EventBuffer",
    "EventSender",
    "Poster",
    "UsageCounter",
    "as_poster",
    "encode_batch",
    "encode_events",
]

#: ``post(body, batch_id) -> accepted``: what the sender calls for each batch.
Poster = Callable[[bytes, str], int]

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


class UsageCounter:
    """Evaluation counts per ``(flag key, variant)`` since the last :meth:`drain`.

    Why no lock: :meth:`note` runs inside every flag evaluation, which takes no lock. It
    bumps a one-element list in a dict; :meth:`drain` swaps the dict for a new one. Under
    heavy thread contention an increment can be lost (two threads read the same slot), or
    land in a dict just drained and be counted in the next window's stead; a usage count is
    a statistic and that is the price of a lock-free hot path. Counts never carry contexts.
    """

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str | None], list[int]] = {}

    def note(self, flag_key: str, variant: str | None) -> None:
        key = (flag_key, variant)
        slot = self.counts.get(key)
        if slot is None:
            slot = self.counts.setdefault(key, [0])
        slot[0] += 1

    def drain(self) -> dict[tuple[str, str | None], int]:
        """The counts so far; counting starts again from zero."""
        counts, self.counts = self.counts, {}
        return {key: slot[0] for key, slot in counts.items() if slot[0] > 0}

    def pending(self) -> int:
        """Evaluations counted and not drained yet."""
        return sum(slot[0] for slot in list(self.counts.values()))


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


def _item(event: Event) -> dict[str, Any]:
    kind, key, variant, value, context, details, ts = event
    item: dict[str, Any] = {"kind": kind, "context": context, "timestamp": _iso(ts)}
    if kind == "exposure":
        item["flag"] = key
        item["variant"] = variant
        item["value"] = value
    elif kind == "evaluation":  # usage counts: the number of evaluations, never a context
        item["flag"] = key
        item["variant"] = variant
        item["count"] = value
    else:
        item["name"] = key
        if value is not None:
            item["value"] = value
    item["details"] = dict(details) if details else {}
    return item


def encode_events(events: list[Event]) -> bytes:
    """The POST body ``{"events": [...]}`` (docs/protocol.md), encoded as Python's json does.

    Lenient: NaN/Infinity come out as Python writes them (the server rejects such an event
    individually). The sender uses ``encode_batch``, which never sends them.
    """
    out = [_item(event) for event in events]
    return json.dumps({"events": out}, separators=(",", ":"), default=_json_default).encode()


#: A JSON-escaped NUL (``\u0000``) preceded by an even number of backslashes: a real NUL, not
#: the six characters ``\u0000`` written as text (JSON escapes that backslash).
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def encode_batch(events: list[Event]) -> tuple[bytes, int]:
    """The strict POST body and how many events were left out as unencodable.

    Each event is encoded on its own with ``allow_nan=False``; an event holding NaN/Infinity,
    a NUL character (in a string or a key), or nesting too deep to encode is left out, so one
    bad ``track()`` call never poisons its batch.
    """
    body, kept = _encode(events)
    return body, len(events) - len(kept)


def _encode(events: list[Event]) -> tuple[bytes, list[Event]]:
    parts: list[str] = []
    kept: list[Event] = []
    for event in events:
        try:
            text = json.dumps(
                _item(event), separators=(",", ":"), default=_json_default, allow_nan=False
            )
        except (ValueError, TypeError, RecursionError):
            continue
        if "\\u0000" in text and _ESCAPED_NUL.search(text):
            continue
        parts.append(text)
        kept.append(event)
    return ('{"events":[' + ",".join(parts) + "]}").encode(), kept


def as_poster(post: Callable[..., int]) -> Poster:
    """Adapt ``post(body)`` or ``post(body, batch_id=...)`` to the sender's ``(body, id)``.

    ``event_sink`` callables written for ``(body) -> accepted`` keep working; a sink (or the
    HTTP client) that takes ``batch_id`` gets it.
    """
    try:
        params = inspect.signature(post).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        params = {}  # type: ignore[assignment]
    takes_id = "batch_id" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    if takes_id:
        return lambda body, batch_id: post(body, batch_id=batch_id)
    return lambda body, _batch_id: post(body)


@dataclass(slots=True)
class _Batch:
    """One batch as sent: its id and body never change across retries."""

    id: str
    events: int
    body: bytes
    items: list[Event]
    attempts: int = 0
    retry_after: float | None = None


class EventSender:
    """The background thread that drains an EventBuffer into ``post(body, batch_id)``."""

    def __init__(
        self,
        buffer: EventBuffer,
        post: Callable[..., int],
        *,
        batch_size: int = 500,
        flush_interval: float = 5.0,
        flush_timeout: float = 5.0,
        retry_base: float = 1.0,
        backoff_max: float = 60.0,
        max_attempts: int = 5,
        usage: UsageCounter | None = None,
        usage_interval: float = 60.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if retry_base <= 0 or backoff_max < retry_base:
            raise ValueError("need 0 < retry_base <= backoff_max")
        self.buffer = buffer
        self.buffer.batch_size = batch_size
        self._post = as_poster(post)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.flush_timeout = flush_timeout
        self.retry_base = retry_base
        self.backoff_max = backoff_max
        self.max_attempts = max_attempts
        self.sent = 0  # events the server accepted
        self.rejected = 0  # events the server refused (a refused batch, or one by one)
        self.invalid = 0  # events never sent: NaN/Infinity/NUL/too deep to encode
        self.failed_batches = 0  # transient failures (each one is retried)
        self.dropped_batches = 0  # refused, or out of attempts
        self.dropped_events = 0
        self.batches_sent = 0
        self.usage = usage
        self.usage_interval = usage_interval
        self.usage_events = 0  # evaluation-count events handed to the buffer
        self.usage_evaluations = 0  # the evaluations they count
        self._usage_due = time.monotonic() + usage_interval
        self._pending: deque[_Batch] = deque()  # batches under way, oldest first
        self._rng = random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def stats(self) -> dict[str, int]:
        """Counters since start (see docs/provider.md, "Tracking and exposures")."""
        pending = list(self._pending)
        return {
            "recorded": self.buffer.recorded,
            "buffered": len(self.buffer),
            "overflow_dropped": self.buffer.dropped,
            "sent": self.sent,
            "rejected": self.rejected,
            "invalid_events": self.invalid,
            "batches_sent": self.batches_sent,
            "failed_posts": self.failed_batches,
            "dropped_batches": self.dropped_batches,
            "dropped_events": self.dropped_events,
            "pending_batches": len(pending),
            "pending_events": sum(b.events for b in pending),
            "usage_events": self.usage_events,
            "usage_evaluations": self.usage_evaluations,
            "usage_pending": self.usage.pending() if self.usage is not None else 0,
        }

    def _collect_usage(self, *, force: bool = False) -> None:
        """Move the usage counts into the buffer as ``evaluation`` events, when due."""
        usage = self.usage
        if usage is None:
            return
        now = time.monotonic()
        if not force and now < self._usage_due:
            return
        self._usage_due = now + self.usage_interval
        at = time.time()
        for (flag_key, variant), n in usage.drain().items():
            self.buffer.add(("evaluation", flag_key, variant, n, {}, None, at))
            self.usage_events += 1
            self.usage_evaluations += n

    def start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="flagapp-events", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        delay = self._wait(self.flush_interval)
        while not self._stop.is_set():
            self.buffer.batch_ready.wait(delay)
            self.buffer.batch_ready.clear()
            if self._stop.is_set():
                break
            self._collect_usage()
            ok = self._drain(deadline=None)
            delay = self._wait(self.flush_interval if ok else self._retry_delay())

    def _wait(self, delay: float) -> float:
        """``delay``, shortened to wake up when the usage counts are due."""
        if self.usage is None:
            return delay
        return max(0.0, min(delay, self._usage_due - time.monotonic()))

    def _retry_delay(self) -> float:
        """Backoff for the batch at the front: retry_base * 2**(attempts-1), equal jitter."""
        batch = self._pending[0] if self._pending else None
        attempts = batch.attempts if batch is not None else 1
        step = min(self.backoff_max, self.retry_base * float(1 << min(max(attempts - 1, 0), 32)))
        delay = step / 2 + self._rng.uniform(0, step / 2)
        if batch is not None and batch.retry_after:
            delay = max(delay, min(batch.retry_after, self.backoff_max))
        return delay

    def _next_batch(self) -> _Batch | None:
        """The batch to send now: the one under way, else a new one from the buffer."""
        while not self._pending:
            items = self.buffer.take(self.batch_size)
            if not items:
                return None
            self._add(items, front=False)
        return self._pending[0]

    def _add(self, items: list[Event], *, front: bool) -> None:
        body, kept = _encode(items)
        invalid = len(items) - len(kept)
        if invalid:
            self.invalid += invalid
            logger.warning(
                "flagapp: %d event(s) not sent: NaN, Infinity, a NUL character or nesting"
                " too deep to encode",
                invalid,
            )
        if not kept:
            return
        batch = _Batch(uuid.uuid4().hex, len(kept), body, kept)
        if front:
            self._pending.appendleft(batch)
        else:
            self._pending.append(batch)

    def _drain(self, deadline: float | None) -> bool:
        """Send batches until nothing is left; False after a transient failure (back off)."""
        while True:
            if deadline is not None and time.monotonic() > deadline:
                return False
            batch = self._next_batch()
            if batch is None:
                return True
            if not self._send(batch):
                return False

    def _drop(self, batch: _Batch, why: str, *, refused: bool) -> None:
        self._pending.remove(batch)
        self.dropped_batches += 1
        self.dropped_events += batch.events
        if refused:
            self.rejected += batch.events
        logger.warning(
            "flagapp: dropped a batch of %d event(s) (id %s): %s", batch.events, batch.id, why
        )

    def _send(self, batch: _Batch) -> bool:
        """POST ``batch``; False if it stays pending after a transient failure."""
        try:
            accepted = self._post(batch.body, batch.id)
        except UnexpectedResponse as exc:
            if exc.status == 413 and len(batch.items) > 1:  # not stored: split, new ids
                self._pending.remove(batch)
                mid = len(batch.items) // 2
                self._add(batch.items[mid:], front=True)
                self._add(batch.items[:mid], front=True)
                return True
            self._drop(batch, str(exc), refused=True)  # 4xx: resending cannot succeed
            return True
        except SourceError as exc:  # transient, and a rejected key (it may come back)
            batch.attempts += 1
            self.failed_batches += 1
            batch.retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
            if batch.attempts >= self.max_attempts:
                self._drop(batch, f"{batch.attempts} failed attempts, last: {exc}", refused=False)
                return True
            logger.info("flagapp: sending events failed, will retry: %s", exc)
            return False
        except Exception as exc:  # a bug (or a sink raising): never retry it forever
            logger.exception("flagapp: could not send %d events", batch.events)
            self._drop(batch, f"{type(exc).__name__}: {exc}", refused=False)
            return True
        self._pending.remove(batch)
        self.batches_sent += 1
        accepted = accepted if isinstance(accepted, int) else 0
        self.sent += accepted
        self.rejected += max(0, batch.events - accepted)  # refused one by one (202 answer)
        return True

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
        self._collect_usage(force=True)
        self._drain(deadline=time.monotonic() + self.flush_timeout)
