"""OpenFeature inside Django: the real openfeature-sdk client over DjangoSource (no HTTP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode

from flagapp import evaluation
from flagapp.models import FlagState
from flagapp.openfeature import DjangoSource, get_provider
from flagapp.testutils import override_flag
from tests.flagapp.eval_helpers import (  # noqa: F401 - fixtures
    clean_flag_cache_fixture,
    make_flag,
    publish,
)
from tests.flagapp.evaluation.test_evaluation_cache import _announce_from_other_process

pytestmark = pytest.mark.django_db

DOMAIN = "flagapp-django-tests"


@pytest.fixture
def client() -> Iterator[Any]:
    make_flag("checkout.new-flow")
    make_flag(
        "checkout.color",
        "string",
        {"b": "blue", "g": "green"},
        states={"production": {"enabled": True, "fallthrough": {"variant": "g"}}},
    )
    make_flag(
        "checkout.pro", states={"production": {"enabled": True, "fallthrough": {"variant": "off"}}}
    )
    publish()
    provider = get_provider(init_timeout=1.0)
    api.set_provider_and_wait(provider, domain=DOMAIN)
    try:
        yield api.get_client(domain=DOMAIN)
    finally:
        api.clear_providers()


def _wait_for(predicate: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_provider__published_snapshot__evaluated_locally_with_details(client: Any):
    details = client.get_boolean_details("checkout.new-flow", False, EvaluationContext("u1"))
    assert (details.value, details.variant, details.reason) == (True, "on", "STATIC")
    assert details.flag_metadata["snapshotVersion"] == 1
    assert client.get_string_value("checkout.color", "red") == "green"
    assert client.get_boolean_details("checkout.missing", True).error_code == (
        ErrorCode.FLAG_NOT_FOUND
    )


def test_provider__same_ruleset_object_as_evaluate(client: Any):
    provider = client.provider
    assert isinstance(provider.source, DjangoSource)
    assert provider._snapshot is evaluation.current_ruleset("production")


def test_provider__same_process_publish__seen_at_once_with_change_event(client: Any):
    changed: list[EventDetails] = []
    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, changed.append)
    FlagState.objects.filter(flag__key="checkout.new-flow").update(enabled=False)
    publish()
    details = client.get_boolean_details("checkout.new-flow", True)
    assert (details.value, details.reason) == (True, "DISABLED")
    assert _wait_for(lambda: bool(changed))
    assert changed[-1].flags_changed == ["checkout.new-flow"]


def test_provider__other_process_publish__seen_within_check_interval(client: Any):
    # The LocMem cache stands in for a shared one (SHARED_CACHE): one process plays both.
    with override_settings(FLAGAPP={"CACHE_CHECK_INTERVAL": 0.05, "SHARED_CACHE": True}):
        FlagState.objects.filter(flag__key="checkout.new-flow").update(enabled=False)
        _announce_from_other_process()  # cache keys only: no signal here
        # nothing in this test calls flagapp.evaluate: the source's thread follows the cache
        assert _wait_for(
            lambda: client.get_boolean_details("checkout.new-flow", True).reason == "DISABLED"
        )


def test_provider__override_flag__applies_and_restores(client: Any):
    with override_flag("checkout.pro", active=True), override_flag("brand.new", value=7):
        assert client.get_boolean_value("checkout.pro", False) is True
        assert client.get_integer_value("brand.new", 0) == 7
        assert client.get_string_value("checkout.color", "red") == "green"  # untouched
    assert client.get_boolean_value("checkout.pro", True) is False
    assert client.get_integer_details("brand.new", 0).error_code == ErrorCode.FLAG_NOT_FOUND


@pytest.mark.django_db(transaction=True)  # the SDK initialises in its own thread
def test_provider__no_snapshot_at_start__not_ready_then_ready_on_publish():
    make_flag("checkout.new-flow")
    provider = get_provider(init_timeout=0.1)
    ready = threading.Event()
    client = api.get_client(domain=DOMAIN)
    client.add_handler(ProviderEvent.PROVIDER_READY, lambda d: ready.set())
    try:
        api.set_provider(provider, domain=DOMAIN)
        assert _wait_for(lambda: client.get_provider_status().value in ("ERROR", "NOT_READY"))
        assert client.get_boolean_value("checkout.new-flow", False) is False
        publish()
        assert _wait_for(lambda: client.get_boolean_value("checkout.new-flow", False) is True)
        assert _wait_for(ready.is_set)
    finally:
        api.clear_providers()


def test_source__stop__thread_joined_and_listener_detached():
    make_flag("checkout.new-flow")
    publish()

    class Listener:
        def __init__(self) -> None:
            self.snapshots: list[Any] = []

        def on_snapshot(self, ruleset: Any) -> None:
            self.snapshots.append(ruleset)

        def on_error(self, exc: BaseException, fatal: bool = False) -> None:
            raise AssertionError(exc)

    source = DjangoSource()
    listener = Listener()
    source.start(listener)
    assert listener.snapshots and listener.snapshots[0].version == 1
    thread = source._thread
    source.stop()
    assert thread is not None and not thread.is_alive()
    FlagState.objects.filter(flag__key="checkout.new-flow").update(enabled=False)
    publish()
    assert len(listener.snapshots) == 1
