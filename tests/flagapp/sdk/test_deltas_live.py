"""Deltas end to end: changes through the services reach the provider's sources as deltas.

Real components: the services write and publish, uvicorn serves the SDK API, the provider's
``StreamingSource`` / ``PollingSource`` apply what they get. Waits are bounded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group

from flagapp import evaluation, services
from flagapp.sdk import views
from flagapp.services import sdk_keys
from openfeature_provider.engine import Ruleset, parse_ruleset
from openfeature_provider.remote import PollingSource, StreamingSource
from openfeature_provider.transport import iter_sse
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(transactional_db: Any) -> dict[str, Any]:
    views.forget_deltas()
    env = services.create_environment(key="production", name="Production", actor=None, reason="t")
    owner = Group.objects.create(name="web")
    flags = [
        services.create_flag(
            key=f"web.f{i}", name=f"F{i}", owner=owner, actor=None, reason="t", flag_type="ops"
        )
        for i in range(8)
    ]
    _, token = sdk_keys.create_sdk_key(env, name="deltas", actor=None, reason="tests")
    return {"env": env, "flags": flags, "token": token}


class Collector:
    def __init__(self) -> None:
        self.rulesets: list[Ruleset] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def on_snapshot(self, ruleset: Ruleset) -> None:
        with self.lock:
            self.rulesets.append(ruleset)

    def on_error(self, exc: BaseException, fatal: bool = False) -> None:
        self.errors.append(exc)

    def latest(self) -> Ruleset | None:
        with self.lock:
            return self.rulesets[-1] if self.rulesets else None


def _wait_for(predicate: Callable[[], bool], within: float = 8.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _served_full(server: AsgiServer, token: str) -> Ruleset:
    response = httpx.get(
        f"{server.url}/sdk/v1/ruleset", headers={"Authorization": f"Bearer {token}"}
    )
    return parse_ruleset(response.content)


def test_streaming_source__changes__applied_from_inline_deltas_equal_to_full_fetches(
    world: dict[str, Any],
) -> None:
    server = AsgiServer().start()
    source = StreamingSource(server.url, world["token"], poll_interval=300)
    seen = Collector()
    try:
        source.start(seen)
        assert _wait_for(lambda: seen.latest() is not None)
        for i, flag in enumerate(world["flags"][:4]):
            services.set_flag_enabled(flag, world["env"], True, actor=None, reason=f"on {i}")
            version = evaluation.get_ruleset("production").version  # type: ignore[union-attr]
            assert _wait_for(lambda v=version: seen.latest().version == v)  # type: ignore[union-attr,misc]
            assert seen.latest() == _served_full(server, world["token"])
        assert source.client.full_fetches == 1  # the first one; every change came as a delta
        assert source.client.deltas_applied == 4
        assert seen.errors == []
    finally:
        source.stop()
        server.stop()


def test_polling_source__change__fetched_as_a_226_delta(world: dict[str, Any]) -> None:
    server = AsgiServer().start()
    source = PollingSource(server.url, world["token"], poll_interval=0.1)
    seen = Collector()
    try:
        source.start(seen)
        assert _wait_for(lambda: seen.latest() is not None)
        services.set_flag_enabled(world["flags"][0], world["env"], True, actor=None, reason="on")
        version = evaluation.get_ruleset("production").version  # type: ignore[union-attr]
        assert _wait_for(lambda: seen.latest().version == version)  # type: ignore[union-attr]
        assert seen.latest() == _served_full(server, world["token"])
        assert (source.client.full_fetches, source.client.deltas_applied) == (1, 1)
    finally:
        source.stop()
        server.stop()


def test_stream__plain_client__announcement_exactly_as_before(world: dict[str, Any]) -> None:
    """A provider from before deltas (no A-IM) gets announcements with exactly three fields;
    an opted-in stream gets the delta inline."""
    server = AsgiServer().start()
    try:
        events: dict[str, list[dict[str, Any]]] = {"plain": [], "delta": []}

        def read(kind: str, headers: dict[str, str]) -> None:
            with httpx.stream(
                "GET", f"{server.url}/sdk/v1/stream", headers=headers, timeout=10
            ) as response:
                for event in iter_sse(response.iter_lines()):
                    if event.event == "snapshot":
                        events[kind].append(json.loads(event.data))
                        if len(events[kind]) == 2:
                            return

        auth = {"Authorization": f"Bearer {world['token']}"}
        threads = [
            threading.Thread(target=read, args=("plain", auth), daemon=True),
            threading.Thread(
                target=read, args=("delta", {**auth, "A-IM": "flagapp-delta"}), daemon=True
            ),
        ]
        for thread in threads:
            thread.start()
        assert _wait_for(lambda: len(events["plain"]) == len(events["delta"]) == 1)
        services.set_flag_enabled(world["flags"][0], world["env"], True, actor=None, reason="on")
        for thread in threads:
            thread.join(10)
        plain, delta = events["plain"][1], events["delta"][1]
        assert set(plain) == {"environment", "version", "etag"}
        assert set(delta) == {"environment", "version", "etag", "delta"}
        assert delta["delta"]["base"]["etag"] == events["delta"][0]["etag"]
        assert list(delta["delta"]["flags"]) == ["web.f0"]
    finally:
        server.stop()
