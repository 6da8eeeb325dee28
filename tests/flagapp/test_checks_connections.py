"""flagapp.W010: PostgreSQL persistent connections without a pool, served under ASGI;
flagapp.W011: a PostgreSQL pool that does not check its connections.

Issue 10, finding 8: docs/deploy.md recommended ``CONN_MAX_AGE: 600`` under uvicorn; every
request then opened a connection that was never reused, and four workers exhausted
PostgreSQL's ``max_connections=100``. The check names the leaking combination; the fault
suite (tests/faults/test_pg_connections.py) shows the documented settings stay bounded.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import override_settings

from flagapp.checks import asgi_connection_messages, check_asgi_connections, pool_messages


def _pg(**extra: Any) -> dict[str, dict[str, Any]]:
    return {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "x", **extra}}


@pytest.mark.parametrize("age", [600, None])
def test_check_asgi_connections__postgres_persistent_no_pool_under_asgi__w010(age: Any) -> None:
    with override_settings(ASGI_APPLICATION="x.asgi.app"):
        messages = asgi_connection_messages(databases=_pg(CONN_MAX_AGE=age))
    assert [m.id for m in messages] == ["flagapp.W010"]
    assert "CONN_MAX_AGE" in messages[0].msg and "pool" in messages[0].hint


@pytest.mark.parametrize(
    "db",
    [
        pytest.param({"CONN_MAX_AGE": 0}, id="conn-max-age-0"),
        pytest.param({}, id="default-age"),
        pytest.param(
            {"CONN_MAX_AGE": 0, "OPTIONS": {"pool": {"min_size": 2, "max_size": 10}}}, id="pool"
        ),
        pytest.param({"CONN_MAX_AGE": 600, "OPTIONS": {"pool": True}}, id="pool-true"),
    ],
)
def test_check_asgi_connections__bounded_settings__no_message(db: dict[str, Any]) -> None:
    with override_settings(ASGI_APPLICATION="x.asgi.app"):
        assert asgi_connection_messages(databases=_pg(**db)) == []


def test_check_asgi_connections__not_asgi_or_sqlite__no_message() -> None:
    with override_settings(ASGI_APPLICATION=None):
        # WSGI threads reuse their connection
        assert asgi_connection_messages(databases=_pg(CONN_MAX_AGE=600)) == []
        assert check_asgi_connections() == []
    sqlite = {"default": {"ENGINE": "django.db.backends.sqlite3", "CONN_MAX_AGE": 600}}
    with override_settings(ASGI_APPLICATION="x.asgi.app"):
        assert asgi_connection_messages(databases=sqlite) == []


def test_sdk_fast_path__leaking_postgres_settings__logs_w010(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under uvicorn no system check runs: building the ASGI application logs it instead."""
    from flagapp.asgi import sdk_fast_path

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        return None

    import flagapp.checks

    real = flagapp.checks.asgi_connection_messages
    monkeypatch.setattr(
        flagapp.checks,
        "asgi_connection_messages",
        lambda **kw: real(databases=_pg(CONN_MAX_AGE=600), **kw),
    )
    logging.getLogger("flagapp").addHandler(caplog.handler)
    try:
        with override_settings(ASGI_APPLICATION=None):
            sdk_fast_path(app)
    finally:
        logging.getLogger("flagapp").removeHandler(caplog.handler)
    assert any("flagapp.W010" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "pool",
    [
        pytest.param(True, id="pool-true"),
        pytest.param({"min_size": 2, "max_size": 10}, id="no-check"),
    ],
)
def test_pool_messages__postgres_pool_without_check__w011(pool: Any) -> None:
    messages = pool_messages(databases=_pg(OPTIONS={"pool": pool}))
    assert [m.id for m in messages] == ["flagapp.W011"]
    assert "CONN_HEALTH_CHECKS" in messages[0].hint


def test_pool_messages__checked_pool_no_pool_or_sqlite__no_message() -> None:
    checked = _pg(CONN_HEALTH_CHECKS=True, OPTIONS={"pool": {"max_size": 10}})
    assert pool_messages(databases=checked) == []
    assert pool_messages(databases=_pg(CONN_MAX_AGE=0)) == []
    sqlite = {"default": {"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {"pool": True}}}
    assert pool_messages(databases=sqlite) == []
