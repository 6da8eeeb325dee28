"""The HTTP and server-sent-events framing of docs/protocol.md, below the client.

Entity tags (``format_etag``, ``parse_etag``), the mapping of error statuses to the
exceptions of exceptions.py (``raise_for_status``), the total-deadline watchdog of one request
(``_Deadline``) and the SSE line parser (``iter_sse``, ``SseEvent``). Kept apart from
transport.py's ``RulesetClient`` (what is asked and how an answer becomes a ruleset) so each
is readable alone; transport.py re-exports the public names.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from openfeature_provider.exceptions import (
    AuthenticationError,
    RateLimited,
    SourceUnavailable,
    UnexpectedResponse,
)

__all__ = ["SseEvent", "format_etag", "iter_sse", "parse_etag", "raise_for_status"]


def format_etag(etag: str) -> str:
    """A strong entity tag as sent in ``If-None-Match``: the snapshot etag in double quotes."""
    return '"' + etag.replace('"', "") + '"'


def parse_etag(header: str | None) -> str | None:
    """The snapshot etag inside an ``ETag`` header (weak prefix and quotes removed)."""
    if not header:
        return None
    value = header.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"') or None


def _retry_after(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None  # an HTTP date: rare for this API, fall back to our own backoff


def raise_for_status(response: httpx.Response, what: str) -> None:
    """Map a non-success status to the error vocabulary of exceptions.py."""
    status = response.status_code
    if status in (401, 403):
        raise AuthenticationError(f"{what}: SDK key rejected ({status})", status)
    if status == 429:
        raise RateLimited(
            f"{what}: rate limited (429)", _retry_after(response.headers.get("Retry-After"))
        )
    if status >= 500:
        raise SourceUnavailable(f"{what}: server error {status}")
    raise UnexpectedResponse(f"{what}: unexpected status {status}", status)


class _Deadline:
    """The total deadline of one request: at expiry the request's socket is shut down.

    httpx's timeouts are per operation (connect, each read), so a reply trickling in a byte at
    a time never trips them. This watchdog learns the request's socket from httpcore's
    ``trace`` extension (the client opens a fresh connection per request, so every request
    reports one) and shuts it down when the deadline passes, which makes the blocked read
    return; ``expired`` then tells the caller why. Reading loops also check ``passed()``
    between chunks, which covers transports without a socket (tests' MockTransport).
    """

    __slots__ = ("_lock", "_sock", "_timer", "at", "expired", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self.fire)
        self._timer.daemon = True
        self._timer.start()

    def passed(self) -> bool:
        return self.expired or time.monotonic() >= self.at

    def trace(self, name: str, info: dict[str, Any]) -> None:
        if name not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sock = sock
            expired = self.expired
        if expired:
            _shutdown(sock)

    def fire(self) -> None:
        """Expire now (the timer's action; also how ``interrupt_stream`` cuts a request)."""
        with self._lock:
            self.expired = True
            sock = self._sock
        if sock is not None:
            _shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched server-sent event (``event`` defaults to "message")."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


def iter_sse(
    lines: Iterator[str], on_comment: Callable[[str], None] | None = None
) -> Iterator[SseEvent]:
    """Parse server-sent-events lines (WHATWG framing) into events.

    Comment lines (``: heartbeat``) are passed to ``on_comment`` so the caller can treat them as
    a liveness signal. A ``retry:`` field alone is dispatched as an event with empty data so
    the caller learns the reconnect hint.
    """
    event, event_id = "", None
    data: list[str] = []
    retry: int | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if data or retry is not None:
                yield SseEvent(event or "message", "\n".join(data), event_id, retry)
            event, data, retry = "", [], None
            continue
        if line.startswith(":"):
            if on_comment is not None:
                on_comment(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)
