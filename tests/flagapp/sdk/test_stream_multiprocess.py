"""Several server processes: a change made here reaches a streaming provider through Redis.

The production shape in miniature: ``uvicorn flagapp.asgi:application --workers 2`` in a
subprocess on the PostgreSQL test database, ``NOTIFIER = "redis"``. The change is made through
the services in this (third) process, so the announcement can only reach the workers' streams
over Redis pub/sub. Needs PostgreSQL (``FLAGAPP_TEST_DB=postgres``; an in-memory SQLite database
cannot be shared with another process) and Redis.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group
from django.db import connection
from openfeature.evaluation_context import EvaluationContext

from flagapp import services
from flagapp.sdk import notifier
from flagapp.services import sdk_keys
from openfeature_provider import FlagappProvider
from tests.support.processes import uvicorn_argv

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[3]
REDIS_URL = "redis://127.0.0.1:6379/9"
CTX = EvaluationContext(targeting_key="user-1")


def _redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def redis_notifier(settings: Any) -> Iterator[None]:
    if os.environ.get("FLAGAPP_TEST_DB") != "postgres":
        pytest.skip("needs FLAGAPP_TEST_DB=postgres (a database several processes share)")
    if not _redis_available():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    # As in production, every process shares the cache (the snapshot version pointer).
    prefix = f"flagapp-mp-{uuid.uuid4().hex[:8]}"
    settings.CACHES = _shared_caches(prefix)
    settings.FLAGAPP = {"NOTIFIER": "redis", "REDIS_URL": REDIS_URL}
    yield
    notifier.stop_listener()
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def _shared_caches(prefix: str) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }


@pytest.fixture
def server(redis_notifier: None, tmp_path: Path, settings: Any) -> Iterator[str]:
    module = f"flagapp_mp_settings_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        f"CACHES = {settings.CACHES!r}\n"
        f"FLAGAPP = {{'NOTIFIER': 'redis', 'REDIS_URL': {REDIS_URL!r},\n"
        "           'CACHE_CHECK_INTERVAL': 30.0, 'STREAM_HEARTBEAT_SECONDS': 30.0}\n"
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
        DJANGO_SETTINGS_MODULE=module,
        FLAGAPP_TEST_DB="postgres",
        FLAGAPP_TEST_PG_NAME=str(connection.settings_dict["NAME"]),
    )
    proc = subprocess.Popen(
        uvicorn_argv(port, workers=2),
        env=env,
        cwd=str(REPO),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "uvicorn exited"
            try:
                httpx.get(f"{url}/sdk/v1/ruleset", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_for(predicate: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_streaming_provider__two_worker_processes__change_arrives_over_redis(
    server: str,
) -> None:
    env = services.create_environment(key="production", name="P", actor=None, reason="t")
    owner = Group.objects.create(name="mp")
    flag = services.create_flag(
        key="mp.switch", name="Switch", owner=owner, actor=None, reason="t", flag_type="ops"
    )
    services.update_flag_state(
        flag, env, actor=None, reason="t", enabled=True, fallthrough={"variant": "off"}
    )
    _, token = sdk_keys.create_sdk_key(env, actor=None, reason="tests")
    # Warm both workers (each starts its Redis listener on its first SDK request).
    for _ in range(6):
        assert (
            httpx.get(f"{server}/sdk/v1/ruleset", headers={"X-API-Key": token}).status_code == 200
        )
    # Heartbeats 30 s and the cache check 30 s apart on the server: within the 10 s waited
    # here only the Redis notifier can bring the change.
    provider = FlagappProvider(server, token, stream=True, poll_interval=300, send_events=False)
    provider.initialize(CTX)
    try:
        value = lambda: provider.resolve_boolean_details("mp.switch", False, CTX).value  # noqa: E731
        assert value() is False
        for target in (True, False, True):
            services.update_flag_state(
                flag,
                env,
                actor=None,
                reason="flip",
                fallthrough={"variant": "on" if target else "off"},
            )
            assert _wait_for(lambda t=target: value() is t), f"never served {target}"
    finally:
        provider.shutdown()
