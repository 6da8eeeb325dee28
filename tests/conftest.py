"""Root test configuration.

The engine and provider tests run without Django (the ``provider`` tox env); nothing here may
import Django unconditionally.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Model tables are built from the models unless FLAGAPP_TEST_MIGRATIONS=1 (as .ci/run does
    # against PostgreSQL); tests/django/test_migrations.py keeps the migrations in step.
    if hasattr(config.option, "nomigrations") and os.environ.get("FLAGAPP_TEST_MIGRATIONS") != "1":
        config.option.nomigrations = True
