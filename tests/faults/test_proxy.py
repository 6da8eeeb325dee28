"""The fault proxy itself: each mode does what the fault tests rely on it doing.

Against a loopback echo server, no Django: a proxy that silently passed everything through
would make every fault test pass for the wrong reason.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from .proxy import FaultProxy

pytestmark = [pytest.mark.faults]


@pytest.fixture
def echo() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    port = int(server.getsockname()[1])
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield port
    stop.set()
    server.close()


@pytest.fixture
def proxy(echo: int) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo) as p:
        yield p


def _connect(proxy: FaultProxy) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    return s


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_proxy__pass_through__echoes(proxy: FaultProxy) -> None:
    with _connect(proxy) as s:
        s.sendall(b"hello")
        assert _recv_exactly(s, 5) == b"hello"


def test_proxy__cut_all__open_connections_closed(proxy: FaultProxy) -> None:
    with _connect(proxy) as s:
        s.sendall(b"x")
        assert _recv_exactly(s, 1) == b"x"
        assert proxy.cut_all() == 1
        assert _closed(s)
    assert proxy.faults == 1


def test_proxy__refuse__new_connections_closed_then_recovers(proxy: FaultProxy) -> None:
    proxy.refuse(True)
    with _connect(proxy) as s:
        assert _closed(s)
    proxy.pass_through()
    with _connect(proxy) as s:
        s.sendall(b"ok")
        assert _recv_exactly(s, 2) == b"ok"


def test_proxy__blackhole__nothing_arrives(proxy: FaultProxy) -> None:
    with _connect(proxy) as s:
        proxy.blackhole(True)
        time.sleep(0.3)  # the pump loop sees the mode
        s.sendall(b"lost")
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(10)


def test_proxy__cut_after_bytes__exactly_n_bytes_then_closed(proxy: FaultProxy) -> None:
    with _connect(proxy) as s:
        proxy.cut_after_bytes(3)
        s.sendall(b"abcdef")
        assert _recv_exactly(s, 6) == b"abc"
        assert _closed(s)


def test_proxy__latency_and_drip__slow_but_complete(proxy: FaultProxy) -> None:
    with _connect(proxy) as s:
        proxy.latency(0.2)
        start = time.monotonic()
        s.sendall(b"ping")
        assert _recv_exactly(s, 4) == b"ping"
        assert time.monotonic() - start >= 0.4  # both directions
        proxy.latency(0)
        proxy.drip(2000)
        start = time.monotonic()
        s.sendall(b"x" * 1000)
        s.settimeout(5)
        assert _recv_exactly(s, 1000) == b"x" * 1000
        assert time.monotonic() - start >= 0.5


def _query(text: str) -> bytes:
    body = text.encode() + b"\x00"
    return b"Q" + struct.pack("!I", len(body) + 4) + body


def test_proxy__cut_after_commit__commit_forwarded_answer_dropped(
    proxy: FaultProxy,
) -> None:
    with _connect(proxy) as s:
        proxy.cut_after_commit(1)
        s.sendall(_query("SELECT 1"))  # not a COMMIT: echoed back
        assert _recv_exactly(s, len(_query("SELECT 1"))) == _query("SELECT 1")
        s.sendall(_query("COMMIT"))  # reaches the upstream; its answer never comes back
        assert _closed(s)
    assert proxy.commits_cut == 1
    with _connect(proxy) as s, contextlib.closing(s):  # armed once only
        s.sendall(_query("COMMIT"))
        assert _recv_exactly(s, len(_query("COMMIT"))) == _query("COMMIT")
