"""Settings of the servers the fault suite starts (uvicorn workers, ``manage.py``).

The test suite's settings, with the deployment under test chosen by environment variables
the fixtures set (tests/faults/conftest.py):

- ``FAULTS_DB_NAME`` / ``FAULTS_DB_PORT``: the per-test PostgreSQL database
  ``flagapp_faults_<uuid>``, reached directly or through the fault proxy's port;
- ``FAULTS_CACHE``: ``redis`` (shared cache, Redis notifier) or ``locmem`` (per process);
- ``FAULTS_REDIS_URL`` and ``FAULTS_NAMESPACE``: the Redis server and this test's
  namespace (cache key prefix, and ``FLAGAPP["NAMESPACE"]`` where flagapp has it);
- ``FAULTS_RECONCILE_INTERVAL``: the reconciler's period, where flagapp has one.

PostgreSQL connections as docs/deploy.md recommends under ASGI: Django's pool.
"""

from __future__ import annotations

import os

from flagapp.conf import DEFAULTS
from tests.settings import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["*"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["FAULTS_DB_NAME"],
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("FAULTS_DB_PORT", "5432"),
        "CONN_MAX_AGE": 0,
        # With a pool, Django gives it psycopg_pool's check_connection: a dead pooled
        # connection (a database restart) is replaced before a request gets it.
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "connect_timeout": 3,
            "pool": {"min_size": 1, "max_size": 8, "timeout": 5},
        },
    }
}
if os.environ.get("FAULTS_DB_POOL") == "0":
    DATABASES["default"]["OPTIONS"].pop("pool")  # type: ignore[attr-defined]

_namespace = os.environ.get("FAULTS_NAMESPACE", "faults")
_redis = os.environ.get("FAULTS_REDIS_URL", "redis://127.0.0.1:6379/0")
_shared = os.environ.get("FAULTS_CACHE", "redis") == "redis"

if _shared:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _redis,
            "KEY_PREFIX": _namespace,
            # docs/deploy.md: bounded Redis calls, so a Redis partition cannot hang requests
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "flagapp-faults",
        }
    }

FLAGAPP = {
    "ENVIRONMENT": "production",
    "SINGLE_PROCESS": False,
    "NOTIFIER": "redis" if _shared else "local",
    "REDIS_URL": _redis,
    "RATE_LIMIT_STORE": "local",
    "RATE_LIMITS": {
        "sdk": {"rate": 10_000.0, "burst": 20_000},
        "ofrep": {"rate": 10_000.0, "burst": 20_000},
        "events": {"rate": 10_000.0, "burst": 20_000},
    },
    "CACHE_CHECK_INTERVAL": 1.0,
    # The notifier notices a dead subscription (a partition) within 1-2 s, not the 5-10 s
    # of the default, so the fault tests' bounds hold for announcements too.
    "NOTIFIER_HEALTH_SECONDS": 1.0,
    # The key cache expires within a shortened outage, as the 30 s default did within the
    # 45 s outage of issue 10 finding 4.
    "SDK_KEY_CACHE_SECONDS": 2.0,
    "CONTEXT_SAMPLE_RATE": 1.0,
}
if "NAMESPACE" in DEFAULTS:
    FLAGAPP["NAMESPACE"] = _namespace
if "RECONCILE_INTERVAL" in DEFAULTS:
    FLAGAPP["RECONCILE_INTERVAL"] = float(os.environ.get("FAULTS_RECONCILE_INTERVAL", "3"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"timed": {"format": "%(asctime)s pid=%(process)d %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "timed"}},
    "loggers": {
        "flagapp": {"handlers": ["console"], "level": "WARNING"},
        # the pool's reconnect attempts and discarded connections, with times, beside a
        # failing test's answers (INFO would log every checkout)
        "psycopg.pool": {"handlers": ["console"], "level": "WARNING"},
        # a 500's traceback in the server's output (tests print it when they fail)
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
