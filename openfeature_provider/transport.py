"""HTTP side of the wire contract in docs/protocol.md: ruleset fetch, SSE stream, event posts.

Kept apart from the sources so the protocol lives in one place: every header, status code and
the server-sent-events framing the provider relies on is here, and the test server in
tests/provider speaks exactly what this module (and docs/protocol.md) expects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from openfeature_provider.engine import ParseError, Ruleset, parse_ruleset
from openfeature_provider.exceptions import (
    AuthenticationError,
    InvalidSnapshot,
    RateLimited,
    SourceError,
    SourceUnavailable,
    UnexpectedResponse,
)

__all__ = [
    "EVENTS_PATH",
    "RULESET_PATH",
    "STREAM_PATH",
    "RulesetClient",
    "SseEvent",
    "format_etag",
    "iter_sse",
    "parse_etag",
]

RULESET_PATH = "/sdk/v1/ruleset"
STREAM_PATH = "/sdk/v1/stream"
EVENTS_PATH = "/sdk/v1/events"
USER_AGENT = "flagapp-openfeature-python/0.1"

logger = logging.getLogger("flagapp.provider")


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


class RulesetClient:
    """One SDK key's HTTP conversation with a flagapp server.

    Thread-safety: ``fetch`` is called from one source thread; ``interrupt`` may be called from
    any thread to make a blocked stream read return (used by ``stop``).
    """

    def __init__(
        self,
        url: str,
        sdk_key: str,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url:
            raise ValueError("url is required")
        if not sdk_key:
            raise ValueError("sdk_key is required")
        self.base_url = url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {sdk_key}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=False,
            transport=transport,
        )
        #: The snapshot this client last accepted; its etag goes into If-None-Match.
        self.current: Ruleset | None = None
        self._stream_response: httpx.Response | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- GET /sdk/v1/ruleset ----------------------------------------------------------------
    def fetch(self) -> tuple[Ruleset, bool]:
        """The current snapshot and whether it is new (False after a 304).

        Raises a SourceError subclass on any failure; ``current`` is left untouched then, so a
        rejected document is fetched (and rejected) again rather than silently skipped.
        """
        headers = {"Accept": "application/json"}
        if self.current is not None:
            headers["If-None-Match"] = format_etag(self.current.etag)
        try:
            response = self._client.get(RULESET_PATH, headers=headers)
        except httpx.TimeoutException as exc:
            raise SourceUnavailable(f"ruleset: timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"ruleset: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 304:
            if self.current is None:
                raise UnexpectedResponse("ruleset: 304 without a prior snapshot", 304)
            return self.current, False
        if response.status_code != 200:
            raise_for_status(response, "ruleset")
        ruleset = self._decode(response)
        changed = self.current is None or self.current.etag != ruleset.etag
        self.current = ruleset
        return ruleset, changed

    @staticmethod
    def _decode(response: httpx.Response) -> Ruleset:
        try:
            doc = json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidSnapshot(f"ruleset: body is not JSON ({exc})") from exc
        try:
            ruleset = parse_ruleset(doc)
        except ParseError as exc:
            raise InvalidSnapshot(f"ruleset rejected: {exc}") from exc
        except Exception as exc:  # the parser's contract is ParseError; be safe anyway
            raise InvalidSnapshot(f"ruleset rejected: {type(exc).__name__}: {exc}") from exc
        header = parse_etag(response.headers.get("ETag"))
        if header is not None and header != ruleset.etag:
            logger.warning(
                "flagapp: ETag header %r differs from the snapshot etag %r; using the body's",
                header,
                ruleset.etag,
            )
        return ruleset

    # -- GET /sdk/v1/stream -----------------------------------------------------------------
    @contextlib.contextmanager
    def stream(self, stream_read_timeout: float) -> Iterator[httpx.Response]:
        """Open the SSE stream; yields a 200 ``text/event-stream`` response or raises.

        ``stream_read_timeout`` should exceed the server's heartbeat interval: a silent
        connection (a dead peer, a proxy holding it) then ends with a timeout and a reconnect.
        """
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.current is not None:
            headers["Last-Event-ID"] = str(self.current.version)
        timeout = httpx.Timeout(stream_read_timeout, connect=self.connect_timeout)
        try:
            with self._client.stream("GET", STREAM_PATH, headers=headers, timeout=timeout) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise_for_status(resp, "stream")
                ctype = resp.headers.get("Content-Type", "")
                if not ctype.startswith("text/event-stream"):
                    raise UnexpectedResponse(f"stream: unexpected Content-Type {ctype!r}", 200)
                with self._lock:
                    if self._closed:
                        raise SourceUnavailable("stream: client closed")
                    self._stream_response = resp
                try:
                    yield resp
                finally:
                    with self._lock:
                        self._stream_response = None
        except SourceError:
            raise
        except httpx.TimeoutException as exc:
            raise SourceUnavailable(f"stream: timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"stream: {type(exc).__name__}: {exc}") from exc

    def interrupt_stream(self) -> None:
        """Make a blocked stream read return now (shutting the socket down wakes ``recv``)."""
        with self._lock:
            resp = self._stream_response
        if resp is None:
            return
        stream = resp.extensions.get("network_stream")
        sock: Any = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- POST /sdk/v1/events ----------------------------------------------------------------
    def post_events(self, body: bytes) -> int:
        """POST one batch; returns the server's ``accepted`` count. Raises SourceError."""
        try:
            response = self._client.post(
                EVENTS_PATH,
                content=body,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
        except httpx.TimeoutException as exc:
            raise SourceUnavailable(f"events: timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"events: {type(exc).__name__}: {exc}") from exc
        if response.status_code not in (200, 202):
            raise_for_status(response, "events")
        try:
            accepted = response.json().get("accepted", 0)
        except Exception:
            accepted = 0
        return accepted if isinstance(accepted, int) else 0

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.interrupt_stream()
        self._client.close()
