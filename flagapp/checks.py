"""System checks (``flagapp.E0xx`` errors, ``flagapp.W0xx`` warnings).

Why: the mistakes that break a flag system in production are configuration mistakes that no
unit test sees — a per-process cache when several processes serve requests (each process
would keep serving its own stale snapshot), missing apps, an unparseable key pattern.

| id | condition |
|---|---|
| flagapp.E001 | a required app is missing from INSTALLED_APPS |
| flagapp.E002 | FLAGAPP is not a dict, or has unknown keys |
| flagapp.E003 | FLAGAPP["FLAG_KEY_PATTERN"] is not a valid regular expression |
| flagapp.E004 | FLAGAPP["CACHE_ALIAS"] is not in CACHES |
| flagapp.E005 | FLAGAPP["CACHE_CHECK_INTERVAL"] is not a positive number |
| flagapp.E006 | FLAGAPP["RELEASE_EXPIRY_MAX_DAYS"] is not a positive integer |
| flagapp.E008 | FLAGAPP["OFREP_CORS_ORIGINS"] is not a list of origins ("scheme://host[:port]", |
|  | no path or trailing slash) or "*", or OFREP_CORS_MAX_AGE is not a non-negative integer |
| flagapp.W001 | CACHE_ALIAS is a per-process cache (LocMem/Dummy) while DEBUG is off: every |
|  | check for a newer snapshot is a query (or SHARED_CACHE wrongly claims it is shared) |
| flagapp.W002 | simple_history's HistoryRequestMiddleware missing (admin changes lose the user) |
| flagapp.W003 | FLAGAPP["ENVIRONMENT"] names no existing environment (database checks only) |
| flagapp.W010 | PostgreSQL, CONN_MAX_AGE > 0, no pool, served under ASGI (leaks connections) |
| flagapp.W011 | PostgreSQL pool without CONN_HEALTH_CHECKS (after a database restart its |
|  | dead connections are handed to requests, which answer 500) |
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Tags, Warning
from django.core.checks import register as _register

from .evaluation.cache import PER_PROCESS_CACHES

__all__ = [
    "asgi_connection_messages",
    "check_asgi_connections",
    "check_database",
    "check_database_pools",
    "check_settings",
    "cors_origin_problems",
    "pool_messages",
    "register",
]

REQUIRED_APPS = (
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "simple_history",
)


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    from django.conf import settings as dj

    from .conf import DEFAULTS

    messages: list[CheckMessage] = []
    installed = set(dj.INSTALLED_APPS)
    for app in REQUIRED_APPS:
        if app not in installed:
            messages.append(
                Error(
                    f"flagapp needs {app!r} in INSTALLED_APPS.",
                    hint=f"Add {app!r} to INSTALLED_APPS.",
                    id="flagapp.E001",
                )
            )

    raw = getattr(dj, "FLAGAPP", {})
    if not isinstance(raw, dict):
        messages.append(Error("settings.FLAGAPP must be a dict.", id="flagapp.E002", obj="FLAGAPP"))
        return messages
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        messages.append(
            Error(
                f"Unknown FLAGAPP keys: {', '.join(unknown)}.",
                hint="See docs/settings.md for the supported keys (a typo silently keeps "
                "the default).",
                id="flagapp.E002",
                obj="FLAGAPP",
            )
        )

    merged = {**DEFAULTS, **raw}
    try:
        re.compile(merged["FLAG_KEY_PATTERN"])
    except (re.error, TypeError) as exc:
        messages.append(
            Error(
                f"FLAGAPP['FLAG_KEY_PATTERN'] is not a valid regular expression: {exc}",
                id="flagapp.E003",
                obj="FLAGAPP",
            )
        )

    alias = merged["CACHE_ALIAS"]
    caches = getattr(dj, "CACHES", {})
    if alias not in caches:
        messages.append(
            Error(
                f"FLAGAPP['CACHE_ALIAS'] is {alias!r}, which is not a key of CACHES.",
                id="flagapp.E004",
                obj="FLAGAPP",
            )
        )
    else:
        backend = caches[alias].get("BACKEND", "")
        name = backend.rsplit(".", 1)[-1]
        per_process = backend in PER_PROCESS_CACHES
        if per_process and merged["SHARED_CACHE"] is True:
            messages.append(
                Warning(
                    f"FLAGAPP['SHARED_CACHE'] is True but the flagapp cache {alias!r} uses "
                    f"{name}, which lives in one process: a change made in another process "
                    "(manage.py, a Celery worker, another server worker) is never served "
                    "here until this process restarts.",
                    hint="Remove FLAGAPP['SHARED_CACHE'] (the backend decides) or use a "
                    "shared cache (Redis, Memcached, database).",
                    id="flagapp.W001",
                    obj="FLAGAPP",
                )
            )
        elif (
            per_process
            and merged["SHARED_CACHE"] is None
            and not dj.DEBUG
            and not merged["SINGLE_PROCESS"]
        ):
            messages.append(
                Warning(
                    f"The flagapp cache {alias!r} uses {name}, a per-process cache: it cannot "
                    "tell a process of a change made in another one, so every process that "
                    "evaluates flags asks the database for the latest snapshot version once "
                    f"per CACHE_CHECK_INTERVAL ({merged['CACHE_CHECK_INTERVAL']} s): one "
                    "small query per process and environment, e.g. 16 workers at 1 s = 16 "
                    "queries/s. Changes are served everywhere within the interval either way.",
                    hint="With several processes, use a shared cache (Redis, Memcached) for "
                    "FLAGAPP['CACHE_ALIAS']: the checks become cache reads, query-free. Set "
                    "FLAGAPP['SINGLE_PROCESS'] = True to accept the queries (docs/deploy.md).",
                    id="flagapp.W001",
                    obj="FLAGAPP",
                )
            )

    interval = merged["CACHE_CHECK_INTERVAL"]
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        messages.append(
            Error(
                "FLAGAPP['CACHE_CHECK_INTERVAL'] must be a positive number of seconds.",
                id="flagapp.E005",
                obj="FLAGAPP",
            )
        )
    days = merged["RELEASE_EXPIRY_MAX_DAYS"]
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        messages.append(
            Error(
                "FLAGAPP['RELEASE_EXPIRY_MAX_DAYS'] must be a positive integer.",
                id="flagapp.E006",
                obj="FLAGAPP",
            )
        )

    for problem in cors_origin_problems(merged["OFREP_CORS_ORIGINS"], merged["OFREP_CORS_MAX_AGE"]):
        messages.append(
            Error(
                problem,
                hint="An origin is what a browser sends in its Origin header, e.g. "
                '"https://app.example.com" or "http://localhost:3000" (docs/interop.md, '
                '"Browsers").',
                id="flagapp.E008",
                obj="FLAGAPP",
            )
        )

    from .metrics import config_problems

    for problem in config_problems(merged):
        messages.append(
            Error(problem, hint="docs/observability.md", id="flagapp.E007", obj="FLAGAPP")
        )

    if "simple_history.middleware.HistoryRequestMiddleware" not in getattr(dj, "MIDDLEWARE", []):
        messages.append(
            Warning(
                "simple_history.middleware.HistoryRequestMiddleware is not in MIDDLEWARE.",
                hint="Without it, history rows written outside flagapp's services do not "
                "record the user.",
                id="flagapp.W002",
            )
        )
    return messages


_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def cors_origin_problems(origins: Any, max_age: Any = 0) -> list[str]:
    """What is wrong with ``FLAGAPP["OFREP_CORS_ORIGINS"]`` / ``OFREP_CORS_MAX_AGE``.

    A browser compares ``Access-Control-Allow-Origin`` with its ``Origin`` exactly, so an
    entry with a path, a trailing slash, credentials or another scheme would never match:
    the page's requests fail in the browser with no error on the server.
    """
    problems: list[str] = []
    if isinstance(origins, str) or not isinstance(origins, list | tuple):
        return [
            "FLAGAPP['OFREP_CORS_ORIGINS'] must be a list of origins, not "
            f"{type(origins).__name__} {origins!r}."
        ]
    for index, origin in enumerate(origins):
        where = f"FLAGAPP['OFREP_CORS_ORIGINS'][{index}]"
        if not isinstance(origin, str):
            problems.append(f"{where} must be a string, not {type(origin).__name__}.")
            continue
        if origin == "*":
            if len(origins) > 1:
                problems.append(
                    f'{where} is "*" beside other origins: "*" alone allows every origin.'
                )
            continue
        match = _ORIGIN.fullmatch(origin)
        if match is None:
            problems.append(
                f"{where} is {origin!r}, which is not an origin: expected "
                '"http(s)://host[:port]" with no path, query or trailing slash.'
            )
        elif match["port"] is not None and not 0 < int(match["port"]) < 65536:
            problems.append(f"{where} is {origin!r}: port out of range.")
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
        problems.append(
            f"FLAGAPP['OFREP_CORS_MAX_AGE'] must be a non-negative integer, not {max_age!r}."
        )
    return problems


def check_database(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    """Run only with ``check --database default`` (and by migrate): it queries."""
    if not databases:
        return []
    from django.db import DatabaseError

    from .conf import settings
    from .models import Environment

    try:
        if not Environment.objects.exists():
            return []
        if not Environment.objects.filter(key=settings.ENVIRONMENT).exists():
            return [
                Warning(
                    f"FLAGAPP['ENVIRONMENT'] is {settings.ENVIRONMENT!r} but no environment "
                    "has that key: every flag evaluates to the caller's default.",
                    hint="Create the environment or set FLAGAPP['ENVIRONMENT'].",
                    id="flagapp.W003",
                )
            ]
    except DatabaseError:
        return []  # tables not migrated yet: migrate reports that itself
    return []


def asgi_connection_messages(
    *, under_asgi: bool | None = None, databases: dict[str, Any] | None = None
) -> list[CheckMessage]:
    """flagapp.W010 for each PostgreSQL database that leaks connections under ASGI.

    Why: Django keeps a persistent connection (``CONN_MAX_AGE > 0``) per thread *and async
    context*. Under ASGI every request runs its synchronous part in a new context, so each
    request opens a connection that is never reused and only closes when it is garbage
    collected: four uvicorn workers exhausted PostgreSQL's ``max_connections=100``. Django's
    own pool (``OPTIONS: {"pool": {...}}``, Django >= 5.1 with psycopg 3) or
    ``CONN_MAX_AGE = 0`` bound the connections.

    ``under_asgi`` None: decided from ``settings.ASGI_APPLICATION`` (``manage.py check``);
    ``flagapp.asgi`` passes True when it builds the application (it logs the warning).
    ``databases`` defaults to ``settings.DATABASES``.
    """
    from django.conf import settings as dj

    if under_asgi is None:
        under_asgi = bool(getattr(dj, "ASGI_APPLICATION", None))
    if not under_asgi:
        return []
    messages: list[CheckMessage] = []
    if databases is None:
        databases = getattr(dj, "DATABASES", {})
    for alias, db in databases.items():
        if "postgresql" not in str(db.get("ENGINE", "")):
            continue
        age = db.get("CONN_MAX_AGE", 0)
        persistent = age is None or (isinstance(age, int | float) and age > 0)
        pooled = bool((db.get("OPTIONS") or {}).get("pool"))
        if persistent and not pooled:
            messages.append(
                Warning(
                    f"DATABASES[{alias!r}] is PostgreSQL with CONN_MAX_AGE={age!r} and no "
                    "connection pool, served under ASGI: every request opens a connection "
                    "that is never reused, until PostgreSQL refuses new clients.",
                    hint="Use Django's connection pool: OPTIONS = {'pool': {'min_size': 2, "
                    "'max_size': 10}} with CONN_MAX_AGE = 0 (pip install 'psycopg[pool]'), "
                    "or set CONN_MAX_AGE = 0. See docs/deploy.md.",
                    id="flagapp.W010",
                    obj=f"DATABASES[{alias!r}]",
                )
            )
    return messages


def check_asgi_connections(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    return asgi_connection_messages()


def pool_messages(databases: dict[str, Any] | None = None) -> list[CheckMessage]:
    """flagapp.W011 for each PostgreSQL connection pool that does not check connections.

    Why: psycopg's pool hands out a pooled connection as it is. After PostgreSQL restarts
    (or a failover, or a proxy drops idle connections) every pooled connection is dead, and
    each is given to a request that then fails with a 500 (the fault suite measured 9 of 40
    API reads after a restart, tests/faults/test_pg_connections.py). With
    ``CONN_HEALTH_CHECKS = True`` Django gives the pool psycopg_pool's
    ``ConnectionPool.check_connection``: one round trip per checkout, and a dead connection
    is replaced before use. (Django passes ``check`` itself: putting one in
    ``OPTIONS["pool"]`` fails every connection with a duplicate keyword.) WSGI or ASGI alike.
    """
    from django.conf import settings as dj

    if databases is None:
        databases = getattr(dj, "DATABASES", {})
    messages: list[CheckMessage] = []
    for alias, db in databases.items():
        if "postgresql" not in str(db.get("ENGINE", "")):
            continue
        if not (db.get("OPTIONS") or {}).get("pool"):
            continue
        if not db.get("CONN_HEALTH_CHECKS", False):
            messages.append(
                Warning(
                    f"DATABASES[{alias!r}] uses a connection pool that does not check "
                    "connections: after a database restart each dead pooled connection "
                    "is handed to a request, which fails with HTTP 500.",
                    hint="Set CONN_HEALTH_CHECKS = True: Django then gives the pool "
                    "psycopg_pool's ConnectionPool.check_connection. See docs/deploy.md.",
                    id="flagapp.W011",
                    obj=f"DATABASES[{alias!r}]",
                )
            )
    return messages


def check_database_pools(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    return pool_messages()


def register() -> None:
    _register(check_settings, Tags.compatibility, "flagapp")
    _register(check_asgi_connections, Tags.compatibility, "flagapp")
    _register(check_database_pools, Tags.compatibility, "flagapp")
    _register(check_database, Tags.database, "flagapp")
