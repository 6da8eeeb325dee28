"""Management REST API costs, in-process (Django test client, token auth, SQLite in memory).

What an operator's script or the admin UI waits for:

* ``GET /api/v1/flags/?page_size=100`` with 100 and 500 flags in 3 environments (one page of
  flags with variants, state summaries and versions) -- ms per request and queries;
* ``GET`` and ``PATCH`` of one flag state (the write: version check under lock, engine
  validation, history, and the publish on commit, which compiles the whole environment's
  snapshot -- 500 flags here -- so it dominates) -- ms per request;
* ``GET /api/v1/history/`` (one page of 50 of the union of the history tables) and the same
  filtered by flag.

Runs in a child process with ``tests.settings`` so it never shares Django settings with the
other benchmark modules. Run: ``python -m benchmarks api``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn: Callable[[], Any], n: int) -> float:
    """Median ms per call over ``n`` calls (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _child() -> None:
    import datetime as dt

    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import setup_test_environment

    from benchmarks._table import print_table
    from flagapp import services
    from flagapp.api.tokens import create_api_token

    setup_test_environment()
    call_command("migrate", verbosity=0, run_syncdb=True)
    group = Group.objects.create(name="payments")
    for order, key in enumerate(("development", "staging", "production")):
        services.create_environment(key=key, name=key, order=order, actor=None, reason="bench")
    admin = User.objects.create_superuser("bench", "bench@example.com", "x")
    auth = {"HTTP_AUTHORIZATION": f"Token {create_api_token(admin)[1]}"}
    client = Client()
    expiry = dt.date.today() + dt.timedelta(days=30)
    rows: list[list[Any]] = []

    def add_flags(upto: int) -> None:
        # One transaction: each environment's snapshot is published once, not per flag.
        with transaction.atomic():
            _add_flags(upto)

    def _add_flags(upto: int) -> None:
        for i in range(Flag.objects.count(), upto):
            services.create_flag(
                key=f"team.flag-{i:04d}",
                name=f"flag {i}",
                owner=group,
                expires_on=expiry,
                actor=None,
                reason="bench",
            )

    from flagapp.models import Flag

    def measure(label: str, fn: Callable[[], Any], n: int) -> None:
        queries: list[str] = []

        def count(execute: Any, sql: str, *args: Any) -> Any:
            queries.append(sql)
            return execute(sql, *args)

        with connection.execute_wrapper(count):
            response = fn()
        assert response.status_code < 300, (label, response.status_code, response.content[:200])
        rows.append([label, _timed(fn, n), len(queries)])

    for count in (100, 500):
        add_flags(count)
        measure(
            f"GET flags/?page_size=100 ({count} flags)",
            lambda: client.get("/api/v1/flags/?page_size=100", **auth),
            20,
        )
    state_url = "/api/v1/flags/team.flag-0000/environments/staging/"
    measure("GET one flag state", lambda: client.get(state_url, **auth), 50)
    toggle = {"value": False}

    def patch() -> Any:
        version = client.get(state_url, **auth).json()["version"]
        toggle["value"] = not toggle["value"]
        return client.patch(
            state_url,
            {"enabled": toggle["value"]},
            content_type="application/json",
            HTTP_IF_MATCH=f'"{version}"',
            HTTP_X_CHANGE_REASON="bench",
            **auth,
        )

    measure("GET + PATCH one flag state (write)", patch, 30)
    measure("GET history/ (50 of all)", lambda: client.get("/api/v1/history/", **auth), 20)
    measure(
        "GET history/?flag=... (one flag)",
        lambda: client.get("/api/v1/history/?flag=team.flag-0000", **auth),
        20,
    )
    print_table(
        "Management API, in-process (SQLite in memory, token auth; median ms)",
        ["request", "ms", "queries"],
        rows,
    )


def main() -> None:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", PYTHONPATH=str(ROOT))
    env.pop("FLAGAPP_TEST_DB", None)
    subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_api", "--child"], check=True, cwd=ROOT, env=env
    )


if __name__ == "__main__":
    if "--child" in sys.argv:
        _child()
    else:
        main()
