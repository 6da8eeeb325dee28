"""Real server processes for tests that need more than Django's in-process client.

Several suites start uvicorn on a free loopback port (streams across workers, a killed
process between COMMIT and publish, a second deployment's cache, the fault suite). One
command line here keeps them starting the same server the same way: no lifespan (flagapp
needs none), warnings only, and a short graceful shutdown so a test's teardown is quick.
"""

from __future__ import annotations

import socket
import sys

__all__ = ["free_port", "uvicorn_argv"]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uvicorn_argv(
    port: int,
    *,
    app: str = "flagapp.asgi:application",
    workers: int | None = None,
    graceful_shutdown: float | None = 1,
    access_log: bool = True,
    log_level: str | None = "warning",
    extra: tuple[str, ...] = (),
) -> list[str]:
    """``python -m uvicorn APP`` on 127.0.0.1:``port`` with this interpreter."""
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    argv += ["--lifespan", "off"]
    if log_level is not None:
        argv += ["--log-level", log_level]
    if not access_log:
        argv.append("--no-access-log")
    if graceful_shutdown is not None:
        argv += ["--timeout-graceful-shutdown", f"{graceful_shutdown:g}"]
    return [*argv, *extra]
