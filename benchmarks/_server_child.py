"""What the server benchmarks share: a fresh database, a settings module in a temporary
directory, a child interpreter configured with it, and cleaning up after it.

``bench_server`` and ``bench_scale_delivery`` both run uvicorn against PostgreSQL (when one
answers on 127.0.0.1:5432, else a SQLite file) and Redis; Django is configured in a child
interpreter because ``python -m benchmarks`` may already have configured it differently in
this one. ``FLAGAPP_BENCH_SUFFIX`` (letters, digits, ``_``) is appended to the database
name and the Redis key prefixes, so two checkouts on one machine can run them at once.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["SUFFIX", "cleanup", "postgres_databases", "redis_up", "run_child"]

REPO = Path(__file__).resolve().parent.parent
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
SUFFIX = re.sub(r"[^A-Za-z0-9_]", "", os.environ.get("FLAGAPP_BENCH_SUFFIX", ""))


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def postgres_databases(name: str) -> dict[str, Any] | None:
    """Database ``name`` on the local PostgreSQL (recreated empty), or None without one."""
    try:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=2) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    except Exception:
        return None
    return {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            # docs/deploy.md: Django's pool under ASGI (CONN_MAX_AGE > 0 leaks connections)
            "CONN_MAX_AGE": 0,
            "OPTIONS": {"pool": {"min_size": 2, "max_size": 8}},
        }
    }


def cleanup(
    label: str, *, redis_url: str, patterns: Iterable[str], pg_db: str | None = None
) -> None:
    """Leave nothing behind: the Redis keys matching ``patterns`` and database ``pg_db``."""
    try:
        import redis

        client = redis.Redis.from_url(redis_url)
        for pattern in patterns:
            for key in client.scan_iter(pattern):
                client.delete(key)
    except Exception as exc:
        print(f"{label}: Redis cleanup failed: {exc}")
    if pg_db is not None:
        try:
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=2) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
        except Exception as exc:
            print(f"{label}: dropping {pg_db} failed: {exc}")


def run_child(
    code: str,
    *,
    label: str,
    settings: str,
    redis_url: str,
    redis_patterns: Iterable[str],
    pg_db: str,
    timeout: float,
) -> None:
    """Run ``code`` in a fresh interpreter whose ``DJANGO_SETTINGS_MODULE`` is ``settings``
    (a template with ``{DATABASES}`` and ``{REDIS_URL}``), then clean up. The child finds
    which database it got in ``FLAGAPP_BENCH_DB`` ("PostgreSQL" or "SQLite ...")."""
    if not redis_up():
        print(f"\n{label}: skipped (Redis is not running on 127.0.0.1:6379)")
        return
    databases = postgres_databases(pg_db)
    with tempfile.TemporaryDirectory(prefix=f"{label}-") as tmp:
        db_label = "PostgreSQL"
        if databases is None:
            db_label = "SQLite (no PostgreSQL on 127.0.0.1:5432)"
            databases = {
                "default": {
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": str(Path(tmp) / "bench.sqlite3"),
                }
            }
        module = f"{label}_settings"
        Path(tmp, f"{module}.py").write_text(
            settings.format(DATABASES=databases, REDIS_URL=redis_url)
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([tmp, str(REPO), env.get("PYTHONPATH", "")])
        env["DJANGO_SETTINGS_MODULE"] = module
        env["FLAGAPP_BENCH_DB"] = db_label
        try:
            subprocess.run(
                [sys.executable, "-c", code], env=env, cwd=str(REPO), check=False, timeout=timeout
            )
        finally:
            cleanup(
                label,
                redis_url=redis_url,
                patterns=redis_patterns,
                pg_db=pg_db if db_label == "PostgreSQL" else None,
            )
