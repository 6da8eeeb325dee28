"""Fixtures for provider tests: ruleset documents, a real local flag server, event counting.

Nothing here imports Django: the provider must run without it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from openfeature import api
from openfeature.event import EventDetails, ProviderEvent

from tests.openfeature_provider.flag_server import FlagServer


def make_doc(version: int = 1, *, flags: dict[str, Any] | None = None) -> dict[str, Any]:
    """A format-v1 document with one flag of every kind (overridable)."""
    base: dict[str, Any] = {
        "checkout.new-flow": {
            "kind": "boolean",
            "enabled": True,
            "variants": {"on": True, "off": False},
            "rules": [
                {
                    "id": "pro",
                    "when": [{"attr": "plan", "op": "in", "values": ["pro", "enterprise"]}],
                    "serve": {"variant": "on"},
                }
            ],
            "fallthrough": {"variant": "off"},
            "metadata": {"owner": "payments", "type": "release", "version": 7},
        },
        "ui.theme": {
            "kind": "string",
            "enabled": True,
            "variants": {"light": "light", "dark": "dark"},
            "fallthrough": {"variant": "dark"},
        },
        "api.page-size": {
            "kind": "integer",
            "enabled": True,
            "variants": {"small": 10, "large": 100},
            "fallthrough": {"variant": "large"},
        },
        "pricing.discount": {
            "kind": "float",
            "enabled": True,
            "variants": {"none": 0, "some": 2},
            "fallthrough": {"variant": "some"},
        },
        "ui.layout": {
            "kind": "object",
            "enabled": True,
            "variants": {"grid": {"columns": 3, "tags": ["a"]}},
            "fallthrough": {"variant": "grid"},
        },
        "ops.kill": {
            "kind": "boolean",
            "enabled": False,
            "variants": {"on": True, "off": False},
            "fallthrough": {"variant": "on"},
        },
    }
    if flags is not None:
        base.update(flags)
    return {
        "format": 1,
        "environment": "production",
        "version": version,
        "etag": f"sha256:v{version}",
        "flags": base,
        "segments": {},
    }


class EventRecorder:
    """Counts the provider events the SDK dispatches for one provider name."""

    def __init__(self, provider_name: str) -> None:
        self.provider_name = provider_name
        self.events: list[tuple[ProviderEvent, EventDetails]] = []
        self._lock = threading.Lock()
        self._handlers: list[tuple[ProviderEvent, Callable[[EventDetails], None]]] = []
        for event in ProviderEvent:
            handler = self._make(event)
            api.add_handler(event, handler)
            self._handlers.append((event, handler))

    def _make(self, event: ProviderEvent) -> Callable[[EventDetails], None]:
        def handler(details: EventDetails) -> None:
            if details.provider_name == self.provider_name:
                with self._lock:
                    self.events.append((event, details))

        return handler

    def kinds(self) -> list[str]:
        """Event names in arrival order, once the SDK's first READY has been delivered.

        Handlers run on the SDK's executor threads, so events arrive a little after they are
        emitted; waiting for the first READY keeps assertions on the sequence from racing it.
        """
        self.wait_for(lambda: any(e == ProviderEvent.PROVIDER_READY for e, _ in self.events))
        return self._kinds()

    def _kinds(self) -> list[str]:
        with self._lock:
            return [e.value.removeprefix("PROVIDER_") for e, _ in self.events]

    def of(self, event: ProviderEvent) -> list[EventDetails]:
        with self._lock:
            return [d for e, d in self.events if e == event]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    def wait_count(self, event: ProviderEvent, n: int, timeout: float = 5.0) -> list[EventDetails]:
        """Wait until ``n`` events of this kind arrived, then a little longer to catch extras."""
        self.wait_for(lambda: len(self.of(event)) >= n, timeout)
        time.sleep(0.2)
        return self.of(event)

    def close(self) -> None:
        for event, handler in self._handlers:
            api.remove_handler(event, handler)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def doc() -> dict[str, Any]:
    return make_doc()


@pytest.fixture
def flag_server() -> Iterator[FlagServer]:
    server = FlagServer(make_doc()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def provider_name() -> str:
    return f"flagapp-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def recorder(provider_name: str) -> Iterator[EventRecorder]:
    api.clear_providers()
    rec = EventRecorder(provider_name)
    try:
        yield rec
    finally:
        rec.close()


@pytest.fixture(autouse=True)
def _reset_openfeature() -> Iterator[None]:
    yield
    api.clear_providers()
