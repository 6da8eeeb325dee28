"""Test doubles for services that use the provider: fixed flag values, captured events.

::

    from openfeature import api
    from openfeature_provider import FlagappProvider, InMemorySource
    from openfeature_provider.testing import RecordingSink, static_ruleset

    source = InMemorySource(static_ruleset({"checkout.new-flow": True, "ui.theme": "dark"}))
    sink = RecordingSink()
    api.set_provider_and_wait(FlagappProvider(source=source, event_sink=sink))
    ...
    source.update(static_ruleset({"checkout.new-flow": False}, version=2))  # flip a flag

Flags built here go through the real parser and the real engine, so a test exercises the
same code production does; only where the rules come from is faked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from openfeature_provider.engine.types import FORMAT_VERSION

__all__ = ["RecordingSink", "static_flag", "static_ruleset"]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict | list):
        return "object"
    raise TypeError(f"no flag kind for a {type(value).__name__}")


def static_flag(value: Any, *, enabled: bool = True, kind: str | None = None) -> dict[str, Any]:
    """A format-v1 flag that serves ``value`` to everyone (variant ``"value"``, reason STATIC).

    ``kind`` defaults to the Python type of ``value`` (bool, int, float, str, dict/list);
    pass ``kind="float"`` for a float flag holding an integral number.
    """
    return {
        "kind": kind or _kind(value),
        "enabled": enabled,
        "variants": {"value": value},
        "fallthrough": {"variant": "value"},
        "metadata": {"owner": "tests", "type": "ops"},
    }


def static_ruleset(
    values: Mapping[str, Any],
    *,
    version: int = 1,
    environment: str = "test",
    disabled: Iterable[str] = (),
    flags: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A format-v1 document serving fixed ``values``; ``flags`` adds hand-written flags.

    Each call with another ``version`` gets another etag, so handing it to
    ``InMemorySource.update`` is a new snapshot (and a PROVIDER_CONFIGURATION_CHANGED event
    naming the flags that differ).
    """
    off = set(disabled)
    doc_flags: dict[str, Any] = {
        key: static_flag(value, enabled=key not in off) for key, value in values.items()
    }
    for key, flag in (flags or {}).items():
        doc_flags[key] = dict(flag)
    return {
        "format": FORMAT_VERSION,
        "environment": environment,
        "version": version,
        "etag": f"test-{environment}-{version}",
        "flags": doc_flags,
        "segments": {},
    }


class RecordingSink:
    """An ``event_sink`` that keeps the events instead of POSTing them.

    ``events`` holds the decoded event objects exactly as they would be sent to
    ``POST /sdk/v1/events`` (docs/protocol.md). Events reach the sink from the provider's
    sender thread: after ``provider.shutdown()`` (which flushes) all of them are here.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.batches = 0
        #: The ``X-Flagapp-Batch-Id`` each batch would have carried, in order.
        self.batch_ids: list[str | None] = []
        self._lock = threading.Lock()

    def __call__(self, body: bytes, batch_id: str | None = None) -> int:
        batch = json.loads(body)["events"]
        with self._lock:
            self.events.extend(batch)
            self.batches += 1
            self.batch_ids.append(batch_id)
        return len(batch)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("kind") == kind]
