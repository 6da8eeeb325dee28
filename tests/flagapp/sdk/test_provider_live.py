"""End to end: a change made through the services reaches the Python OpenFeature provider.

Real components only: the services write and publish, a real HTTP server serves the SDK API
(pytest-django's live_server for polling, uvicorn for the stream), and FlagappProvider runs
inside the real openfeature-sdk. Waits are bounded and poll the provider, never sleep blind.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode, ProviderFatalError
from openfeature.flag_evaluation import Reason
from openfeature.track import TrackingEventDetails

from flagapp import services
from flagapp.models import SdkEvent
from flagapp.sdk import keys
from flagapp.services import sdk_keys
from openfeature_provider import FlagappProvider
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

CTX = EvaluationContext(targeting_key="user-1", attributes={"plan": "pro"})


@pytest.fixture
def world(transactional_db: Any) -> dict[str, Any]:
    env = services.create_environment(
        key="production", name="Production", actor=None, reason="test"
    )
    owner = Group.objects.create(name="checkout")
    flag = services.create_flag(
        key="checkout.new-flow",
        name="New flow",
        owner=owner,
        actor=None,
        reason="test",
        flag_type="ops",
    )
    _, token = sdk_keys.create_sdk_key(env, name="provider", actor=None, reason="tests")
    return {"env": env, "flag": flag, "token": token}


@pytest.fixture
def connect() -> Iterator[Callable[..., OpenFeatureClient]]:
    providers: list[FlagappProvider] = []

    def make(url: str, token: str, **options: Any) -> OpenFeatureClient:
        provider = FlagappProvider(url, token, init_timeout=5, **options)
        providers.append(provider)
        domain = f"live-{uuid.uuid4().hex}"
        api.set_provider_and_wait(provider, domain)
        return api.get_client(domain)

    yield make
    for provider in providers:
        provider.shutdown()
    api.clear_providers()


def _wait_for(predicate: Callable[[], bool], within: float = 8.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _turn_on(world: dict[str, Any]) -> None:
    services.update_flag_state(
        world["flag"],
        world["env"],
        actor=None,
        reason="launch",
        enabled=True,
        fallthrough={"variant": "on"},
    )


def test_polling_provider__change_through_services__served_within_the_poll_interval(
    live_server: Any, world: dict[str, Any], connect: Callable[..., OpenFeatureClient]
) -> None:
    client = connect(live_server.url, world["token"], poll_interval=0.2)
    before = client.get_boolean_details("checkout.new-flow", False, CTX)
    assert (before.value, before.reason) == (False, Reason.DISABLED)
    _turn_on(world)
    assert _wait_for(lambda: client.get_boolean_value("checkout.new-flow", False, CTX) is True)
    after = client.get_boolean_details("checkout.new-flow", False, CTX)
    assert (after.variant, after.reason) == ("on", Reason.STATIC)


def test_streaming_provider__change_through_services__served_without_polling(
    world: dict[str, Any], connect: Callable[..., OpenFeatureClient]
) -> None:
    server = AsgiServer().start()
    try:
        # A poll interval far beyond the wait: only the stream can bring the change in time.
        client = connect(server.url, world["token"], stream=True, poll_interval=300)
        assert client.get_boolean_value("checkout.new-flow", False, CTX) is False
        _turn_on(world)
        assert _wait_for(lambda: client.get_boolean_value("checkout.new-flow", False, CTX) is True)
        services.set_flag_enabled(world["flag"], world["env"], False, actor=None, reason="kill")
        assert _wait_for(
            lambda: (
                client.get_boolean_value("checkout.new-flow", True, CTX) is True
                and client.get_boolean_details("checkout.new-flow", True, CTX).reason
                == Reason.DISABLED
            )
        )
    finally:
        api.clear_providers()
        server.stop()


def test_provider__missing_flag__flag_not_found(
    live_server: Any, world: dict[str, Any], connect: Callable[..., OpenFeatureClient]
) -> None:
    client = connect(live_server.url, world["token"], poll_interval=5)
    details = client.get_string_details("no.such-flag", "dflt", CTX)
    assert (details.value, details.error_code) == ("dflt", ErrorCode.FLAG_NOT_FOUND)


def test_provider__track__event_stored_by_the_server(
    live_server: Any, world: dict[str, Any], connect: Callable[..., OpenFeatureClient]
) -> None:
    client = connect(live_server.url, world["token"], poll_interval=5, event_flush_interval=0.1)
    client.track("checkout.completed", CTX, TrackingEventDetails(value=3.5))
    assert _wait_for(lambda: SdkEvent.objects.filter(key="checkout.completed").exists())
    event = SdkEvent.objects.get(key="checkout.completed")
    assert (event.kind, event.value, event.targeting_key) == ("tracking", 3.5, "user-1")


@pytest.mark.parametrize("case", ["revoked", "unknown"])
def test_provider__refused_key__not_ready(
    live_server: Any, world: dict[str, Any], case: str
) -> None:
    token = world["token"]
    if case == "revoked":
        sdk_keys.revoke_sdk_key(keys.public_id_of(token), actor=None, reason="tests")
    else:
        token = "fa_production_" + "Z" * 40
    provider = FlagappProvider(live_server.url, token, init_timeout=3, poll_interval=5)
    domain = f"live-{uuid.uuid4().hex}"
    try:
        with pytest.raises(ProviderFatalError, match="401"):
            api.set_provider_and_wait(provider, domain)
        details = api.get_client(domain).get_boolean_details("checkout.new-flow", True, CTX)
    finally:
        provider.shutdown()
        api.clear_providers()
    assert details.value is True
    assert details.error_code == ErrorCode.PROVIDER_FATAL
