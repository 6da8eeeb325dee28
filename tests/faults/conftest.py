"""The fault suite (issue 10): real uvicorn workers, real PostgreSQL and Redis, a TCP fault
proxy between them. Slow by nature, so it runs only when asked for: ``-m faults`` (what the
fault step of .ci/run does) or ``FLAGAPP_FAULTS=1``; otherwise its tests are deselected
(``make test`` and the PostgreSQL suite step do not run them twice).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from .figures import FIGURES
from .proxy import FaultProxy
from .support import SETUP_SCRIPT, Server, manage


def _wanted(config: pytest.Config) -> bool:
    return os.environ.get("FLAGAPP_FAULTS") == "1" or "faults" in (config.option.markexpr or "")


def pytest_configure(config: pytest.Config) -> None:
    if _wanted(config):
        # CI bounds the step with `timeout` (SIGTERM): end like Ctrl-C, so fixtures tear
        # down (servers stopped, databases dropped) instead of dying mid-test.
        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, interrupt)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _wanted(config):
        return
    here = os.path.dirname(__file__)
    deselected = [i for i in items if str(i.path).startswith(here)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [i for i in items if i not in deselected]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES.rows:
        return
    terminalreporter.section("flagapp fault suite: figures")
    for line in FIGURES.table().splitlines():
        terminalreporter.write_line(line)


# --- PostgreSQL, Redis and the deployment under test ------------------------------------

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
REDIS_URL = os.environ.get("FLAGAPP_FAULTS_REDIS_URL", "redis://127.0.0.1:6379/0")
#: One suffix per pytest run: every database and Redis namespace of the run carries it.
RUN_ID = uuid.uuid4().hex[:10]


def _pg_admin_execute(*statements: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def fault_services() -> None:
    """PostgreSQL and Redis on loopback, or skip (a failure under FLAGAPP_REQUIRE_SERVICES)."""
    try:
        _pg_admin_execute("SELECT 1")
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}")
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")


def _env(db_name: str, namespace: str, **extra: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "tests.faults.fault_settings",
        "FAULTS_DB_NAME": db_name,
        "FAULTS_NAMESPACE": namespace,
        "FAULTS_REDIS_URL": REDIS_URL,
        **extra,
    }


@pytest.fixture(scope="session")
def fault_template(fault_services: None) -> Iterator[tuple[str, dict[str, str]]]:
    """A migrated database with the setup data (tests clone it: ``CREATE DATABASE ...
    TEMPLATE``, a fraction of a second), and the setup's tokens."""
    name = f"flagapp_faults_{RUN_ID}_tpl"
    _pg_admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
    try:
        env = _env(name, f"flagapp-faults-{RUN_ID}-tpl", FAULTS_DB_POOL="0")
        # One process migrates and loads the setup data (a Django start-up costs seconds).
        script = "from django.core.management import call_command\n"
        script += "call_command('migrate', interactive=False, verbosity=0)\n" + SETUP_SCRIPT
        proc = manage("shell", "-c", script, env=env, timeout=240)
        line = next(x for x in proc.stdout.splitlines() if x.startswith("SETUP"))
        yield name, dict(json.loads(line[len("SETUP") :]))
    finally:
        _pg_admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Deployment:
    """One deployment under test: its own database (a clone of the template), its own Redis
    namespace, optionally a fault proxy in front of PostgreSQL, and its uvicorn servers."""

    db_name: str
    namespace: str
    data: dict[str, str]
    proxy: FaultProxy
    cache: str = "redis"
    servers: list[Server] = field(default_factory=list)

    def env(self, *, via_proxy: bool = True, **extra: str) -> dict[str, str]:
        port = str(self.proxy.port) if via_proxy else "5432"
        return _env(
            self.db_name, self.namespace, FAULTS_DB_PORT=port, FAULTS_CACHE=self.cache, **extra
        )

    def server(self, workers: int = 2, via_proxy: bool = True, **extra: str) -> Server:
        server = Server(
            "flagapp.asgi:application", self.env(via_proxy=via_proxy, **extra), workers=workers
        )
        self.servers.append(server)
        server.wait_ready()
        return server

    def manage(self, *args: str, via_proxy: bool = False, **kw: Any) -> Any:
        return manage(*args, env=self.env(via_proxy=via_proxy), **kw)

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        """A query on this deployment's database, directly (never through the proxy)."""
        import psycopg

        dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={self.db_name} connect_timeout=3"
        with psycopg.connect(dsn, autocommit=True) as conn:
            return list(conn.execute(query).fetchall())  # type: ignore[arg-type]

    @property
    def sdk_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.data['sdk_key']}"}

    @property
    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.data['api_token']}"}


class Deployments:
    """Makes deployments from the template and tears every one of them down."""

    def __init__(self, template: str, data: dict[str, str]) -> None:
        self.template = template
        self.data = data
        self.made: list[Deployment] = []

    def __call__(self, cache: str = "redis") -> Deployment:
        suffix = f"{RUN_ID}_{secrets.token_hex(4)}"
        name = f"flagapp_faults_{suffix}"
        _pg_admin_execute(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        dep = Deployment(
            db_name=name,
            namespace=f"flagapp-faults-{suffix}",
            data=self.data,
            proxy=FaultProxy("127.0.0.1", 5432),
            cache=cache,
        )
        self.made.append(dep)
        return dep

    def close(self) -> None:
        for dep in self.made:
            for server in dep.servers:
                server.stop()
            dep.proxy.close()
            with contextlib.suppress(Exception):
                _pg_admin_execute(f"DROP DATABASE IF EXISTS {dep.db_name} WITH (FORCE)")
            with contextlib.suppress(Exception):
                import redis

                client = redis.Redis.from_url(REDIS_URL)
                for key in client.scan_iter(f"*{dep.namespace}*", count=1000):
                    client.delete(key)


@pytest.fixture
def deployment(fault_template: tuple[str, dict[str, str]]) -> Iterator[Deployments]:
    """``deployment(cache="redis"|"locmem")``: a fresh deployment per call, torn down after."""
    made = Deployments(*fault_template)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="session")
def shared(fault_template: tuple[str, dict[str, str]]) -> Iterator[tuple[Deployment, Server]]:
    """The production shape most tests share (starting servers is what costs time): 2
    uvicorn workers, Redis cache and notifier, PostgreSQL through the fault proxy. Tests
    using it leave the proxy passing through and make no assumption about the flag's
    state beyond what they read first."""
    made = Deployments(*fault_template)
    try:
        dep = made()
        yield dep, dep.server(workers=2)
    finally:
        made.close()
