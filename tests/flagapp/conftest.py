"""Fixtures shared by the Django tests.

Writes go through :mod:`flagapp.services`, which publish snapshots with
``transaction.on_commit``; under pytest-django's ``db`` fixture the test's transaction never
commits, so wrap writes whose snapshot you need in ``django_capture_on_commit_callbacks(
execute=True)`` (or use the ``committed`` fixture below).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.cache import caches


@pytest.fixture(autouse=True)
def _clear_flagapp_cache() -> Iterator[None]:
    """Snapshot announcements live in the (LocMem) cache: start every test empty."""
    from flagapp import assembly

    caches["default"].clear()
    _drop_usage_buffers()
    assembly.forget()  # outbox row ids and environment ids are reused between tests
    yield
    caches["default"].clear()


@pytest.fixture(autouse=True)
def _stop_reconciler() -> Iterator[None]:
    """A live-server test's first request starts the embedded default's reconciler thread
    (flagapp.reconciler); it must not outlive the test."""
    yield
    from flagapp import reconciler

    reconciler.stop_reconciler()


def _drop_usage_buffers() -> None:
    """Evaluation counts and sampled contexts buffered in this process by earlier tests must
    not be flushed into this test's database (they would show up as recent contexts, e.g.
    in a blast-radius preview)."""
    from flagapp import exposures, sampling

    sampling.reset()  # the one usage buffer (flagapp.evaluate notes into it too)
    exposures.reset()  # exposures and track() events (flagapp.evaluate records into it)


@pytest.fixture
def owner_group(db: Any) -> Group:
    return Group.objects.get_or_create(name="payments")[0]


@pytest.fixture
def envs(db: Any) -> dict[str, Any]:
    """development, staging and production (none protected)."""
    from flagapp import services

    out = {}
    for order, key in enumerate(("development", "staging", "production")):
        out[key] = services.create_environment(
            key=key, name=key.title(), order=order, actor=None, reason="test setup"
        )
    return out


@pytest.fixture
def committed(
    django_capture_on_commit_callbacks: Callable[..., AbstractContextManager[Any]],
) -> Callable[[], AbstractContextManager[Any]]:
    """``with committed(): services.x(...)`` runs the on_commit callbacks (publishing)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def make_flag(owner_group: Group, envs: dict[str, Any]) -> Callable[..., Any]:
    """Create a flag through the services (release flag expiring in 30 days)."""
    from flagapp import services

    def make(key: str = "checkout.new-flow", **kwargs: Any) -> Any:
        kwargs.setdefault("name", key)
        kwargs.setdefault("owner", owner_group)
        kwargs.setdefault("expires_on", dt.date.today() + dt.timedelta(days=30))
        kwargs.setdefault("actor", None)
        kwargs.setdefault("reason", "test setup")
        return services.create_flag(key=key, **kwargs)

    return make
