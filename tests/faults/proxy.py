"""A TCP fault proxy for the fault suite: put it between a server and PostgreSQL (or Redis)
and break the connection the way networks and databases break.

Threads on loopback, no dependency. Modes (switchable while connections are open):

- pass-through (the default);
- :meth:`FaultProxy.cut_all` — close every open connection now (a database restart, a
  failover); :meth:`refuse` — close new connections at once (the database is down);
- :meth:`blackhole` — keep connections open but forward nothing (a partition: packets are
  dropped, nobody sends a reset);
- :meth:`cut_after_bytes` — cut each connection after N more bytes from upstream;
- :meth:`cut_after_commit` — in a PostgreSQL stream, let the next ``COMMIT`` reach the server
  (the transaction commits) and cut that connection before the server's answer reaches the
  client: the client cannot know its transaction committed;
- :meth:`latency` — delay every chunk; :meth:`drip` — forward at most N bytes a second.

``faults`` counts the faults injected (connections cut or refused, commits cut).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass, field

__all__ = ["FaultProxy"]


@dataclass(eq=False)
class _Conn:
    client: socket.socket
    upstream: socket.socket
    #: this connection sent a COMMIT while cut_after_commit was armed: cut on the answer
    commit_seen: bool = False
    upstream_bytes_left: int | None = None
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._conns: set[_Conn] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._refuse = False
        self._blackhole = False
        self._latency = 0.0
        self._drip: int | None = None
        self._cut_after_bytes: int | None = None
        self._commits_to_cut = 0
        self._deliver_commit_reply = False
        self.faults = 0
        self.connections = 0
        self.commits_cut = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="proxy")
        self._thread.start()

    # --- controls ------------------------------------------------------------------------
    def pass_through(self) -> None:
        """Back to normal: no refusal, no black hole, no latency, nothing armed."""
        self._refuse = self._blackhole = False
        self._latency = 0.0
        self._drip = self._cut_after_bytes = None
        self._commits_to_cut = 0

    def cut_all(self) -> int:
        """Close every open connection; returns how many."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()
        self.faults += len(conns)
        return len(conns)

    def refuse(self, on: bool = True) -> None:
        self._refuse = on

    def blackhole(self, on: bool = True) -> None:
        self._blackhole = on

    def latency(self, seconds: float) -> None:
        self._latency = seconds

    def drip(self, bytes_per_second: int | None) -> None:
        self._drip = bytes_per_second

    def cut_after_bytes(self, n: int | None) -> None:
        """Each connection open now or later is cut after ``n`` more upstream bytes."""
        self._cut_after_bytes = n
        with self._lock:
            for c in self._conns:
                c.upstream_bytes_left = n

    def cut_after_commit(self, count: int = 1, *, deliver_reply: bool = False) -> None:
        """Cut the connection of each of the next ``count`` COMMITs seen, after the server
        received it; ``deliver_reply`` True forwards the server's answer first (the client
        learns of the commit, then loses the connection)."""
        self._commits_to_cut = count
        self._deliver_commit_reply = deliver_reply

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- machinery -----------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refuse:
                self.faults += 1
                with contextlib.suppress(OSError):
                    client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                with contextlib.suppress(OSError):
                    client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(client, upstream, upstream_bytes_left=self._cut_after_bytes)
            with self._lock:
                self._conns.add(conn)
                self.connections += 1
            threading.Thread(target=self._pump, args=(conn,), daemon=True).start()

    def _forget(self, conn: _Conn) -> None:
        conn.close()
        with self._lock:
            self._conns.discard(conn)

    def _pump(self, conn: _Conn) -> None:
        try:
            while not conn.closed and not self._stop.is_set():
                try:
                    ready, _, _ = select.select([conn.client, conn.upstream], [], [], 0.2)
                except (OSError, ValueError):
                    break
                if self._blackhole:
                    # Read and drop: the peer's writes succeed, nothing arrives.
                    for s in ready:
                        with contextlib.suppress(OSError):
                            if not s.recv(65536):
                                return self._forget(conn)
                    continue
                for s in ready:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        return self._forget(conn)
                    if not data:
                        return self._forget(conn)
                    if s is conn.client:
                        if self._commits_to_cut > 0 and _is_commit(data):
                            self._commits_to_cut -= 1
                            conn.commit_seen = True
                        self._send(conn, conn.upstream, data)
                    else:
                        if conn.commit_seen:
                            if self._deliver_commit_reply:
                                self._send(conn, conn.client, data)
                            self.commits_cut += 1
                            self.faults += 1
                            return self._forget(conn)
                        if conn.upstream_bytes_left is not None:
                            if len(data) >= conn.upstream_bytes_left:
                                self._send(conn, conn.client, data[: conn.upstream_bytes_left])
                                self.faults += 1
                                return self._forget(conn)
                            conn.upstream_bytes_left -= len(data)
                        self._send(conn, conn.client, data)
        finally:
            self._forget(conn)

    def _send(self, conn: _Conn, dest: socket.socket, data: bytes) -> None:
        if self._latency:
            time.sleep(self._latency)
        drip = self._drip
        if drip:
            step = max(1, drip // 20)
            for i in range(0, len(data), step):
                dest.sendall(data[i : i + step])
                time.sleep(step / drip)
            return
        dest.sendall(data)


def _is_commit(data: bytes) -> bool:
    """A PostgreSQL simple-query message ``Q`` whose text is COMMIT (what psycopg sends for
    ``connection.commit()``)."""
    i = data.find(b"Q")
    while i != -1:
        if data[i + 5 : i + 11].upper() == b"COMMIT":
            return True
        i = data.find(b"Q", i + 1)
    return False
