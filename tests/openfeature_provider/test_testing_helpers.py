"""The test doubles shipped for users (openfeature_provider.testing)."""

from __future__ import annotations

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent

from openfeature_provider import FlagappProvider, InMemorySource
from openfeature_provider.testing import RecordingSink, static_flag, static_ruleset
from tests.openfeature_provider.conftest import EventRecorder


def test_static_ruleset__every_kind__served_through_client() -> None:
    doc = static_ruleset(
        {"a.bool": True, "a.str": "x", "a.int": 3, "a.float": 1.5, "a.obj": {"k": [1]}},
        disabled=["a.int"],
    )
    api.set_provider_and_wait(FlagappProvider(source=InMemorySource(doc)))
    client = api.get_client()
    assert client.get_boolean_value("a.bool", False) is True
    assert client.get_string_value("a.str", "") == "x"
    assert client.get_integer_value("a.int", 9) == 9  # disabled: the caller's default
    assert client.get_float_value("a.float", 0.0) == 1.5
    assert client.get_object_value("a.obj", {}) == {"k": [1]}


def test_static_flag__unsupported_type__type_error() -> None:
    with pytest.raises(TypeError):
        static_flag(object())


def test_static_ruleset__new_version__configuration_changed(
    provider_name: str, recorder: EventRecorder
) -> None:
    source = InMemorySource(static_ruleset({"a": True, "b": "x"}))
    api.set_provider_and_wait(FlagappProvider(source=source, name=provider_name))
    source.update(static_ruleset({"a": False, "b": "x"}, version=2))
    changed = recorder.wait_count(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, 1)
    assert [c.flags_changed for c in changed] == [["a"]]


def test_recording_sink__captures_track_events_on_shutdown() -> None:
    sink = RecordingSink()
    provider = FlagappProvider(source=InMemorySource(static_ruleset({"a": True})), event_sink=sink)
    api.set_provider_and_wait(provider)
    api.get_client().track("signup", EvaluationContext("u1"))
    provider.shutdown()
    assert [(e["kind"], e["name"]) for e in sink.of_kind("track")] == [("track", "signup")]
    assert sink.events[0]["context"] == {"targetingKey": "u1"}
