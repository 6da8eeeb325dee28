"""A small, programmable flagapp server speaking docs/protocol.md, for provider tests.

It runs ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (port 0, or a given port for
restarts) in a daemon thread. Tests set the served ruleset, script responses (status codes,
bodies, delays), open/drop SSE streams, and read what the provider sent. Everything is bounded:
stream handlers wake at least every ``heartbeat`` seconds and exit when the server stops.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VALID_KEY = "sdk-test-key"
FORBIDDEN_KEY = "sdk-forbidden-key"


@dataclass
class Scripted:
    """One scripted reply to GET /sdk/v1/ruleset (used once, in order)."""

    status: int = 200
    body: bytes | None = None  # None: the current ruleset
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Seconds between bytes: the whole reply (status line, headers, body) trickles out one
    #: byte at a time, the slow-drip case a per-read timeout never catches.
    drip: float = 0.0
    drip_headers: bool = True  # False: status line and headers at once, then the body drips
    #: Send the body with Transfer-Encoding: chunked (no Content-Length), in pieces of this
    #: many bytes: what a proxy streaming an unknown-length body looks like.
    chunked: int = 0


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


class FlagServer:
    def __init__(self, doc: Mapping[str, Any], *, port: int = 0, heartbeat: float = 0.2) -> None:
        self.doc: dict[str, Any] = dict(doc)
        self.heartbeat = heartbeat
        self.retry_ms: int | None = 50
        self.keys = {VALID_KEY}
        self.forbidden = {FORBIDDEN_KEY}
        self.script: deque[Scripted] = deque()
        self.sticky: Scripted | None = None  # applies to every ruleset request while set
        self.stream_status: int | None = None  # e.g. 404: no stream endpoint; 500
        self.events_status: int | None = None
        self.events_script: deque[int] = deque()  # one status per POST, before events_status
        self.requests: list[Request] = []
        self.events: list[dict[str, Any]] = []
        self._streams: list[queue.Queue[bytes | None]] = []
        self._sockets: set[Any] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> FlagServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._closing.clear()
        httpd = _Server(("127.0.0.1", self._port), handler)
        httpd.daemon_threads = True
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and end every open stream (the "server died" case)."""
        self._closing.set()
        self.drop_streams()
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:  # keep-alive connections die with the server
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def restart(self) -> None:
        """Start again on the same port."""
        self.stop()
        self.start()

    def set_ruleset(self, doc: Mapping[str, Any], *, announce: bool = True) -> None:
        with self._lock:
            self.doc = dict(doc)
        if announce:
            self.announce()

    def announce(self) -> None:
        message = self._snapshot_event()
        with self._lock:
            streams = list(self._streams)
        for q in streams:
            q.put(message)

    def drop_streams(self) -> None:
        with self._lock:
            streams, self._streams = list(self._streams), []
        for q in streams:
            q.put(None)

    @property
    def open_streams(self) -> int:
        with self._lock:
            return len(self._streams)

    def count(self, path: str) -> int:
        return sum(1 for r in list(self.requests) if r.path == path)

    # -- internals ------------------------------------------------------------------------
    def _snapshot_event(self) -> bytes:
        with self._lock:
            doc = self.doc
        data = json.dumps(
            {"environment": doc["environment"], "version": doc["version"], "etag": doc["etag"]}
        )
        return f"id: {doc['version']}\nevent: snapshot\ndata: {data}\n\n".encode()

    def _register_stream(self) -> queue.Queue[bytes | None]:
        q: queue.Queue[bytes | None] = queue.Queue()
        with self._lock:
            self._streams.append(q)
        return q

    def _unregister_stream(self, q: queue.Queue[bytes | None]) -> None:
        with self._lock:
            if q in self._streams:
                self._streams.remove(q)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # like the real server: NaN/Infinity are refused


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up (timeouts, shutdown) are part of the tests


class _Handler(BaseHTTPRequestHandler):
    server_state: FlagServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.server_state._lock:
            self.server_state._sockets.add(self.connection)

    def finish(self) -> None:
        with self.server_state._lock:
            self.server_state._sockets.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def _key(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:].strip()
        return self.headers.get("X-API-Key")

    def _auth(self) -> bool:
        key = self._key()
        state = self.server_state
        if key in state.forbidden:
            self._reply(403, b'{"error":"forbidden"}')
            return False
        if key not in state.keys:
            self._reply(401, b'{"error":"unknown or missing SDK key"}')
            return False
        return True

    def _reply(
        self,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        if body and "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > 64:
            body = gzip.compress(body)
            headers = {**(headers or {}), "Content-Encoding": "gzip"}
        self.send_response(status)
        if status != 304:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _record(self, body: bytes = b"") -> None:
        self.server_state.requests.append(
            Request(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
        )

    def do_GET(self) -> None:
        self._record()
        if self.path == "/sdk/v1/ruleset":
            self._ruleset()
        elif self.path == "/sdk/v1/stream":
            self._stream()
        else:
            self._reply(404, b'{"error":"not found"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self._record(body)
        if self.path != "/sdk/v1/events":
            self._reply(404, b'{"error":"not found"}')
            return
        if not self._auth():
            return
        state = self.server_state
        scripted = state.events_script.popleft() if state.events_script else state.events_status
        if scripted is not None:
            self._reply(scripted, b'{"error":"scripted"}')
            return
        try:
            events = json.loads(body, parse_constant=_reject_constant)["events"]
            assert isinstance(events, list)
        except Exception:
            self._reply(400, b'{"errors":["body must be {\\"events\\": [...]}"]}')
            return
        state.events.extend(events)
        self._reply(202, json.dumps({"accepted": len(events)}).encode())

    def _ruleset(self) -> None:
        state = self.server_state
        step = state.script.popleft() if state.script else state.sticky
        if step is not None and step.delay:
            time.sleep(step.delay)
        if not self._auth():
            return
        if step is not None and step.drip:
            body = step.body if step.body is not None else json.dumps(state.doc).encode()
            self._drip(step.status, body, step.drip, step.drip_headers)
            return
        if step is not None and step.chunked:
            body = step.body if step.body is not None else json.dumps(state.doc).encode()
            self._chunked(step.status, body, step.chunked)
            return
        if step is not None and (step.status != 200 or step.body is not None):
            self._reply(step.status, step.body or b"", step.headers)
            return
        doc = state.doc
        etag = f'"{doc["etag"]}"'
        if self.headers.get("If-None-Match") == etag:
            self._reply(304, b"", {"ETag": etag})
            return
        self._reply(200, json.dumps(doc).encode(), {"ETag": etag, "Cache-Control": "no-cache"})

    def _drip(self, status: int, body: bytes, interval: float, headers: bool) -> None:
        """The whole reply one byte at a time; stops when the client hangs up or we stop."""
        head = (
            f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.close_connection = True
        closing = self.server_state._closing
        data = head + body
        try:
            if not headers:
                self.wfile.write(head)
                self.wfile.flush()
                data = body
            for i in range(len(data)):
                if closing.wait(interval):
                    return
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
        except OSError:
            pass

    def _chunked(self, status: int, body: bytes, size: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        try:
            view = memoryview(body)
            for start in range(0, len(body), size):
                piece = view[start : start + size]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass

    def _stream(self) -> None:
        state = self.server_state
        if not self._auth():
            return
        if state.stream_status is not None:
            self._reply(state.stream_status, b'{"error":"scripted"}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        q = state._register_stream()
        try:
            if state.retry_ms is not None:
                self.wfile.write(f"retry: {state.retry_ms}\n\n".encode())
            self.wfile.write(state._snapshot_event())
            self.wfile.flush()
            while not state._closing.is_set():
                try:
                    item = q.get(timeout=state.heartbeat)
                except queue.Empty:
                    item = b": heartbeat\n\n"
                if item is None:
                    break
                self.wfile.write(item)
                self.wfile.flush()
        except OSError:
            pass
        finally:
            state._unregister_stream(q)
