"""A real HTTP receiver for the webhook tests: a threaded ``http.server`` on loopback.

It records every request (path, headers, raw body) and answers from a script: each path
has a queue of behaviours (``500``, ``("sleep", seconds)``, ``("body", bytes)``); an empty
queue answers 200. Requests are served on their own threads, so a sleeping answer never
blocks the next request, and ``close()`` does not wait for a sleeper.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    script: dict[str, deque[Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def then(self, path: str, *behaviours: Any) -> None:
        with self.lock:
            self.script.setdefault(path, deque()).extend(behaviours)

    def requests(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if path is None or r.path == path]

    def _next(self, path: str) -> Any:
        with self.lock:
            queue = self.script.get(path)
            return queue.popleft() if queue else 200


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver: Receiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert receiver is not None
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            behaviour = receiver._next(self.path)
            status, payload = 200, b"ok"
            if isinstance(behaviour, int):
                status = behaviour
            elif behaviour[0] == "sleep":
                time.sleep(behaviour[1])
            elif behaviour[0] == "body":
                payload = behaviour[1]
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    receiver = Receiver(url=f"http://{host}:{port}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
