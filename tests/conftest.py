"""Root test configuration.

The engine and provider tests run without Django (the ``provider`` tox env); nothing here may
import Django unconditionally.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Model tables are built from the models unless FLAGAPP_TEST_MIGRATIONS=1 (as .ci/run does
    # against PostgreSQL); tests/flagapp/models/test_migrations.py keeps the migrations in step.
    if hasattr(config.option, "nomigrations") and os.environ.get("FLAGAPP_TEST_MIGRATIONS") != "1":
        config.option.nomigrations = True


_SERVICE_MARKERS = ("postgres", "redis", "celery_worker", "browser", "prometheus")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under FLAGAPP_REQUIRE_SERVICES=1 (CI), a service test that skips is a failure.

    Locally, tests that need PostgreSQL, Redis, a Celery worker or Chromium skip when the
    service is absent; in CI the services are there, so a skip would hide a broken setup.
    """
    outcome = yield
    report = outcome.get_result()
    if (
        os.environ.get("FLAGAPP_REQUIRE_SERVICES") == "1"
        and report.skipped
        and not hasattr(report, "wasxfail")
        and any(item.get_closest_marker(m) for m in _SERVICE_MARKERS)
        and _skip_is_for_missing_service(item)
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"service test skipped under FLAGAPP_REQUIRE_SERVICES=1: {report.longrepr}"
        )


def _skip_is_for_missing_service(item: pytest.Item) -> bool:
    # A postgres-only test legitimately skips on a SQLite run; only the runs that asked for
    # the service (FLAGAPP_TEST_DB=postgres, or marker browser in the browser step) count.
    needs_postgres = item.get_closest_marker("postgres") is not None
    return not needs_postgres or os.environ.get("FLAGAPP_TEST_DB") == "postgres"
