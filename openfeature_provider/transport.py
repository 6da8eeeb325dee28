"""HTTP side of the wire contract in docs/protocol.md: ruleset fetch, SSE stream, event posts.

Kept apart from the sources so the protocol lives in one place: every header, status code and
the server-sent-events framing the provider relies on is here, and the test server in
tests/openfeature_provider speaks exactly what this module (and docs/protocol.md) expects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

import httpx

from openfeature_provider.engine import ParseError, Ruleset, parse_ruleset
from openfeature_provider.engine.delta import DeltaMismatch, parse_delta
from openfeature_provider.engine.swap import freeze_wanted, loads
from openfeature_provider.exceptions import (
    InvalidSnapshot,
    ResponseTooLarge,
    SourceError,
    SourceUnavailable,
    UnexpectedResponse,
)
from openfeature_provider.wire import (
    SseEvent,
    _Deadline,
    format_etag,
    iter_sse,
    parse_etag,
    raise_for_status,
)

__all__ = [
    "BATCH_ID_HEADER",
    "DEFAULT_FETCH_TIMEOUT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DELTA_IM",
    "EVENTS_PATH",
    "RULESET_PATH",
    "STREAM_PATH",
    "RulesetClient",
    "SdkKey",
    "SseEvent",
    "format_etag",
    "iter_sse",
    "parse_etag",
]

RULESET_PATH = "/sdk/v1/ruleset"
STREAM_PATH = "/sdk/v1/stream"
EVENTS_PATH = "/sdk/v1/events"
BATCH_ID_HEADER = "X-Flagapp-Batch-Id"
#: ``A-IM`` value asking for deltas (docs/protocol.md, "Deltas"); a server that does not know
#: it answers as before (200 with the full document).
DELTA_IM = "flagapp-delta"
USER_AGENT = "flagapp-openfeature-python/0.1"

#: An SDK key, or a callable returning the current one (read per request: a rotated secret
#: file or vault entry is picked up without a restart).
SdkKey = str | Callable[[], str]

#: Total seconds for one ruleset fetch or event post: connect, headers and the whole body.
DEFAULT_FETCH_TIMEOUT: Final = 30.0
#: Largest ruleset body read (decoded size): 10,000 flags are about 3 MiB.
DEFAULT_MAX_RESPONSE_BYTES: Final = 32 * 1024 * 1024
#: Replies the protocol keeps small (errors, the events answer): read at most this much.
_SMALL_REPLY_BYTES: Final = 64 * 1024

logger = logging.getLogger("flagapp.provider")


class _DeltaFailed(InvalidSnapshot):
    """A delta that does not apply to the held document: fetch the full one instead."""


class RulesetClient:
    """One SDK key's HTTP conversation with a flagapp server.

    Thread-safety: ``fetch`` is called from one source thread; ``interrupt`` may be called from
    any thread to make a blocked stream read return (used by ``stop``).
    """

    def __init__(
        self,
        url: str,
        sdk_key: SdkKey,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 5.0,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        transport: httpx.BaseTransport | None = None,
        deltas: bool = True,
    ) -> None:
        if not url:
            raise ValueError("url is required")
        if not sdk_key:
            raise ValueError("sdk_key is required")
        if fetch_timeout <= 0:
            raise ValueError("fetch_timeout must be positive")
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be at least 1")
        self.base_url = url.rstrip("/")
        self._sdk_key = sdk_key
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.fetch_timeout = fetch_timeout
        self.max_response_bytes = max_response_bytes
        #: Ask for deltas (``A-IM: flagapp-delta``) when holding a document to apply them to.
        self.deltas = deltas
        #: Snapshots applied from a delta / fetched whole (diagnostics, tests, benchmarks).
        self.deltas_applied = 0
        self.full_fetches = 0
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            # A fresh connection per request, so the deadline watchdog always learns the
            # socket it must cut. Costs nothing in practice: polls are further apart than
            # servers keep idle connections (uvicorn: 5 s).
            limits=httpx.Limits(max_keepalive_connections=0),
            follow_redirects=False,
            transport=transport,
        )
        #: The snapshot this client last accepted; its etag goes into If-None-Match.
        self.current: Ruleset | None = None
        self._stream_response: httpx.Response | None = None
        self._inflight: set[_Deadline] = set()  # requests under way (cut by interrupt_stream)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def sdk_key(self) -> str:
        """The key to send now (the callable's answer when ``sdk_key`` is one).

        Raises SourceUnavailable when the callable fails or returns no key: transient, the
        secret may be being rewritten.
        """
        key = self._sdk_key
        if isinstance(key, str):
            return key
        try:
            value = key()
        except Exception as exc:
            raise SourceUnavailable(f"sdk_key callable failed: {type(exc).__name__}") from exc
        if not isinstance(value, str) or not value.strip():
            raise SourceUnavailable("sdk_key callable returned no key")
        return value.strip()

    def _auth(self, headers: dict[str, str]) -> dict[str, str]:
        headers["Authorization"] = f"Bearer {self.sdk_key}"
        return headers

    # -- GET /sdk/v1/ruleset ----------------------------------------------------------------
    def fetch(self) -> tuple[Ruleset, bool]:
        """The current snapshot and whether it is new (False after a 304).

        Holding a snapshot (with its document), it asks for a delta; a delta that does not
        apply (another base, wrong counts, rejected result) is followed by one full fetch.
        Raises a SourceError subclass on any failure; ``current`` is left untouched then, so a
        rejected document is fetched (and rejected) again rather than silently skipped.
        """
        try:
            return self._fetch(delta=self.deltas)
        except _DeltaFailed as exc:
            logger.info("flagapp: %s; fetching the full ruleset", exc)
            return self._fetch(delta=False)

    def _fetch(self, *, delta: bool) -> tuple[Ruleset, bool]:
        headers = {"Accept": "application/json"}
        base = self.current
        if base is not None:
            headers["If-None-Match"] = format_etag(base.etag)
        if delta and base is not None and base.build is not None:
            headers["A-IM"] = DELTA_IM
        status, response_headers, body = self._request(
            "GET", RULESET_PATH, "ruleset", headers, None, self.max_response_bytes
        )
        if status == 304:
            if base is None:
                raise UnexpectedResponse("ruleset: 304 without a prior snapshot", 304)
            return base, False
        if status == 226 and "A-IM" in headers and base is not None:
            try:
                delta_doc = loads(body)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise _DeltaFailed(f"delta is not JSON ({exc})") from exc
            ruleset = self._apply(base, delta_doc)
        elif status != 200:
            raise_for_status(httpx.Response(status, headers=response_headers), "ruleset")
            raise AssertionError("unreachable")  # pragma: no cover
        else:
            ruleset = self._decode(body, response_headers, base)
            self.full_fetches += 1
        changed = base is None or base.etag != ruleset.etag
        self.current = ruleset
        return ruleset, changed

    def apply_delta(self, delta_doc: Any) -> Ruleset:
        """Apply a delta (an inline stream one) to ``current``; the new ruleset becomes
        current. Raises InvalidSnapshot when it does not apply (the caller fetches)."""
        base = self.current
        if base is None or base.build is None:
            raise InvalidSnapshot("delta: no parsed ruleset held to apply it to")
        try:
            ruleset = self._apply(base, delta_doc)
        except _DeltaFailed as exc:
            raise InvalidSnapshot(str(exc)) from exc
        self.current = ruleset
        return ruleset

    def _apply(self, base: Ruleset, delta_doc: Any) -> Ruleset:
        try:
            # applied to the compiled ruleset: only what the delta carries is parsed
            ruleset = parse_delta(delta_doc, previous=base, freeze=freeze_wanted())
        except DeltaMismatch as exc:
            raise _DeltaFailed(f"delta does not apply: {exc}") from exc
        except ParseError as exc:
            raise _DeltaFailed(f"delta rejected: {exc}") from exc
        except Exception as exc:  # the contract is ParseError; be safe anyway
            raise _DeltaFailed(f"delta rejected: {type(exc).__name__}: {exc}") from exc
        self.deltas_applied += 1
        return ruleset

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        headers: dict[str, str],
        content: bytes | None,
        max_bytes: int,
    ) -> tuple[int, httpx.Headers, bytes]:
        """One request within ``fetch_timeout`` in total; the body read up to ``max_bytes``.

        Returns (status, headers, body). Raises SourceUnavailable (unreachable, timed out,
        connection broken) or ResponseTooLarge.
        """
        headers = self._auth(headers)
        deadline = _Deadline(self.fetch_timeout)
        with self._lock:
            if self._closed:
                deadline.cancel()
                raise SourceUnavailable(f"{what}: client closed")
            self._inflight.add(deadline)
        try:
            request = self._client.build_request(
                method, path, headers=headers, content=content, extensions={"trace": deadline.trace}
            )
            response = self._client.send(request, stream=True)
            try:
                body = self._read_capped(response, deadline, what, max_bytes)
            finally:
                response.close()
        except SourceError:
            raise
        except httpx.HTTPError as exc:
            if deadline.passed():
                raise self._timed_out(what) from exc
            if isinstance(exc, httpx.TimeoutException):
                raise SourceUnavailable(f"{what}: timed out ({type(exc).__name__})") from exc
            raise SourceUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
        finally:
            deadline.cancel()
            with self._lock:
                self._inflight.discard(deadline)
        return response.status_code, response.headers, body

    def _timed_out(self, what: str) -> SourceUnavailable:
        return SourceUnavailable(
            f"{what}: timed out: no complete response within {self.fetch_timeout:g}s"
            " (fetch_timeout)"
        )

    def _read_capped(
        self, response: httpx.Response, deadline: _Deadline, what: str, max_bytes: int
    ) -> bytes:
        """The decoded body, refusing more than ``max_bytes`` and stopping at the deadline."""
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise self._too_large(what, max_bytes, f"Content-Length {length}")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise self._too_large(what, max_bytes, "more bytes than that")
            if deadline.passed():
                raise self._timed_out(what)
        if deadline.expired:  # the watchdog cut the connection at a chunk boundary
            raise self._timed_out(what)
        return bytes(body)

    @staticmethod
    def _too_large(what: str, max_bytes: int, seen: str) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"{what}: response body over {max_bytes} bytes ({seen}); not read further"
            " (max_response_bytes)",
            max_bytes,
        )

    @staticmethod
    def _decode(content: bytes, headers: httpx.Headers, previous: Ruleset | None = None) -> Ruleset:
        try:
            doc = loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidSnapshot(f"ruleset: body is not JSON ({exc})") from exc
        except RecursionError as exc:  # deeper than any valid document can be
            raise InvalidSnapshot("ruleset: body is not JSON (nested too deep)") from exc
        try:
            # incremental: the flags unchanged since ``previous`` are reused, not re-parsed
            ruleset = parse_ruleset(doc, previous=previous, freeze=freeze_wanted(), keep_raw=False)
        except ParseError as exc:
            raise InvalidSnapshot(f"ruleset rejected: {exc}") from exc
        except Exception as exc:  # the parser's contract is ParseError; be safe anyway
            raise InvalidSnapshot(f"ruleset rejected: {type(exc).__name__}: {exc}") from exc
        header = parse_etag(headers.get("ETag"))
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
        headers = self._auth({"Accept": "text/event-stream", "Cache-Control": "no-cache"})
        if self.deltas:
            headers["A-IM"] = DELTA_IM  # announcements may carry their delta inline
        if self.current is not None:
            headers["Last-Event-ID"] = str(self.current.version)
        timeout = httpx.Timeout(stream_read_timeout, connect=self.connect_timeout)
        try:
            with self._client.stream("GET", STREAM_PATH, headers=headers, timeout=timeout) as resp:
                if resp.status_code != 200:
                    for _chunk in resp.iter_bytes():  # drain a little, never a huge body
                        break
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
        """Make a blocked stream read, and any request under way, return now.

        Shutting a socket down wakes a ``recv`` blocked on it in another thread.
        """
        with self._lock:
            resp = self._stream_response
            inflight = list(self._inflight)
        for deadline in inflight:
            deadline.fire()
        if resp is None:
            return
        stream = resp.extensions.get("network_stream")
        sock: Any = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- POST /sdk/v1/events ----------------------------------------------------------------
    def post_events(self, body: bytes, batch_id: str | None = None) -> int:
        """POST one batch; returns the server's ``accepted`` count. Raises SourceError.

        ``batch_id`` goes into ``X-Flagapp-Batch-Id``: the server stores a batch once per id,
        so resending it after a lost answer does not duplicate events.
        """
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if batch_id is not None:
            headers[BATCH_ID_HEADER] = batch_id
        status, headers_in, reply = self._request(
            "POST",
            EVENTS_PATH,
            "events",
            headers,
            body,
            _SMALL_REPLY_BYTES,
        )
        if status not in (200, 202):
            raise_for_status(httpx.Response(status, headers=headers_in), "events")
        try:
            accepted = json.loads(reply).get("accepted", 0)
        except Exception:
            accepted = 0
        return accepted if isinstance(accepted, int) else 0

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.interrupt_stream()
        self._client.close()
