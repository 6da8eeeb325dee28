"""Two processes, one shared Redis cache: a publish here reaches another process's
``flagapp.evaluate`` through the cache alone (that process has no flagapp tables at all)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from flagapp.models import FlagState
from tests.flagapp.eval_helpers import clean_flag_cache_fixture, make_flag, publish  # noqa: F401

ROOT = Path(__file__).resolve().parents[3]
REDIS_URL = os.environ.get("FLAGAPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

#: The other process: Django with the same Redis cache and an empty in-memory database, so any
#: read of the database would fail. It prints each change of what it is served, then stops.
OTHER_PROCESS = textwrap.dedent("""
    import json, sys, time
    import django
    from django.conf import settings
    settings.configure(
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                        "simple_history", "flagapp"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                            "LOCATION": sys.argv[1], "KEY_PREFIX": sys.argv[2]}},
        FLAGAPP={"ENVIRONMENT": "production", "CACHE_CHECK_INTERVAL": 0.2,
                 "NAMESPACE": sys.argv[2]},
        USE_TZ=True, LOGGING_CONFIG=None,
    )
    django.setup()
    import flagapp
    from flagapp.evaluation import api
    api._sampler = lambda *a: None  # nothing to record into: no tables here
    last = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        d = flagapp.evaluate("checkout.new-flow", True)
        seen = [d.reason, d.metadata.get("snapshotVersion")]
        if seen != last:
            print(json.dumps(seen), flush=True)
            last = seen
            if d.reason == "DISABLED":
                break
        time.sleep(0.02)
""")


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


def _read_line(proc: subprocess.Popen[str]) -> Any:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"the other process stopped: {proc.stderr.read() if proc.stderr else ''}"
    return json.loads(line)


def test_publish__other_process_on_shared_redis__sees_new_version_without_database():
    if not _redis_up():
        pytest.skip("Redis is not reachable")
    prefix = f"flagapp-test-{uuid.uuid4().hex[:8]}"
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    # Two separate in-memory databases: say they are one deployment (one namespace).
    flagapp_settings = {"ENVIRONMENT": "production", "NAMESPACE": prefix}
    with override_settings(CACHES=caches, FLAGAPP=flagapp_settings):
        make_flag("checkout.new-flow")
        publish()
        proc = subprocess.Popen(
            [sys.executable, "-c", OTHER_PROCESS, REDIS_URL, prefix],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        )
        try:
            assert _read_line(proc) == ["STATIC", 1]
            FlagState.objects.filter(flag__key="checkout.new-flow").update(enabled=False)
            publish()
            assert _read_line(proc) == ["DISABLED", 2]
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            from django.core.cache import caches as django_caches

            from flagapp import snapshot

            django_caches["default"].delete_many(
                [  # only our keys: never FLUSHDB a shared Redis
                    snapshot.cache_version_key("production"),
                    snapshot.cache_document_key("production", 1),
                    snapshot.cache_document_key("production", 2),
                ]
            )
