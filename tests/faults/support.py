"""Real processes for the fault suite: uvicorn servers, ``manage.py`` commands, setup data.

Everything here starts real subprocesses (never an in-process test server): the faults the
suite injects — a cut database connection, a second process, a dead worker — only exist
between real processes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import free_port, uvicorn_argv

__all__ = [
    "PY",
    "REPO",
    "SETUP_SCRIPT",
    "Server",
    "free_port",
    "manage",
    "running",
    "wait_until",
]

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def manage(
    *args: str, env: Mapping[str, str], timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``python -m django <args>`` in a fresh interpreter with ``env`` (settings module...)."""
    proc = subprocess.run(
        [PY, "-m", "django", *args],
        cwd=REPO,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"manage {' '.join(args[:2])} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    return proc


#: Creates what every fault test needs, through the services, and prints it as JSON:
#: environments staging + production, flag ``faults.kill-switch`` (boolean, on in
#: production), a superuser and its management-API token, a production SDK key.
SETUP_SCRIPT = r"""
import datetime as dt, json
from django.contrib.auth.models import Group, User
from flagapp import services
from flagapp.models import Environment
from flagapp.services.sdk_keys import create_sdk_key
from tests.faults.support import create_api_token
for order, key in enumerate(("staging", "production")):
    if not Environment.objects.filter(key=key).exists():
        services.create_environment(key=key, name=key, order=order, actor=None, reason="setup")
group, _ = Group.objects.get_or_create(name="faults")
flag = services.create_flag(key="faults.kill-switch", name="Kill switch", owner=group,
    expires_on=dt.date.today() + dt.timedelta(days=30), actor=None, reason="setup")
prod = Environment.objects.get(key="production")
state = flag.states.get(environment=prod)
services.update_flag_state(flag, prod, expected_version=state.version, enabled=True,
    fallthrough={"variant": "on"}, actor=None, reason="setup")
user = User.objects.create_superuser("faults", "faults@example.com", "faults-pw")
_, sdk = create_sdk_key(prod, name="faults", actor=None, reason="faults setup")
print("SETUP" + json.dumps({"api_token": create_api_token(user), "sdk_key": sdk}))
"""


def create_api_token(user: Any) -> str:
    """A management-API token for ``user`` (called inside the server's settings)."""
    from flagapp.api.tokens import create_api_token as create

    return create(user, "faults")[1]


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until ``predicate()`` was true, or None after ``timeout``."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if predicate():
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)


_STARTED: list[subprocess.Popen[bytes]] = []


@atexit.register
def _kill_leftovers() -> None:
    """A run cut short (CI's time bound) must not leave uvicorn workers behind."""
    for proc in _STARTED:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


class Server:
    """A uvicorn subprocess on a free loopback port; output goes to a temporary file."""

    def __init__(
        self,
        app: str,
        env: Mapping[str, str],
        *,
        cwd: Path = REPO,
        workers: int = 1,
        extra_args: tuple[str, ...] = (),
        pythonpath: bool = True,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="flagapp-faults-uvicorn-", suffix=".log", delete=False
        )
        full_env = _env(env)
        if not pythonpath:
            full_env.pop("PYTHONPATH", None)
        cmd = uvicorn_argv(
            self.port,
            app=app,
            workers=workers if workers > 1 else None,
            graceful_shutdown=2,
            access_log=False,
            log_level=None,
            extra=extra_args,
        )
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _STARTED.append(self.proc)

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")[-6000:]

    def wait_ready(self, path: str = "/sdk/v1/ruleset", timeout: float = 40) -> None:
        """Until ``path`` answers anything below 500 (a 401 without key is fine)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"uvicorn exited with {self.proc.returncode}:\n{self.output()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=2).status_code < 500:
                    return
            time.sleep(0.2)
        raise AssertionError(f"uvicorn not ready after {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                # Short: a fault test's server has nothing to finish (streams, listener
                # threads would hold a graceful exit for seconds).
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()
        if not os.environ.get("FAULTS_KEEP_LOGS"):
            with contextlib.suppress(OSError):
                os.unlink(self._log.name)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(server: Server, path: str = "/sdk/v1/ruleset") -> Iterator[Server]:
    try:
        server.wait_ready(path)
        yield server
    finally:
        server.stop()
