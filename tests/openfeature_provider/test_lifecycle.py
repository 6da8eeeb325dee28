"""Lifecycle and events with an in-memory source: each event exactly as specified."""

from __future__ import annotations

import threading
import time

import pytest
from openfeature import api
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.provider import ProviderStatus

from openfeature_provider import FlagappProvider, InMemorySource, InvalidSnapshot
from openfeature_provider.exceptions import AuthenticationError, SourceUnavailable
from tests.openfeature_provider.conftest import EventRecorder, make_doc


def _changed_doc(version: int, **fallthroughs: str) -> dict[str, object]:
    doc = make_doc(version)
    for key, variant in fallthroughs.items():
        doc["flags"][key.replace("_", ".")]["fallthrough"] = {"variant": variant}
    return doc


def test_init__snapshot_available__exactly_one_ready(
    provider_name: str, recorder: EventRecorder
) -> None:
    api.set_provider_and_wait(
        FlagappProvider(source=InMemorySource(make_doc()), name=provider_name)
    )
    time.sleep(0.2)
    assert recorder.kinds() == ["READY"]


def test_new_snapshot__configuration_changed_with_exact_keys(
    provider_name: str, recorder: EventRecorder
) -> None:
    source = InMemorySource(make_doc())
    api.set_provider_and_wait(FlagappProvider(source=source, name=provider_name))
    doc = make_doc(2)
    doc["flags"]["ui.theme"]["fallthrough"] = {"variant": "light"}
    doc["flags"]["api.page-size"]["enabled"] = False
    del doc["flags"]["ops.kill"]
    doc["flags"]["new.flag"] = {
        "kind": "boolean",
        "enabled": True,
        "variants": {"on": True},
        "fallthrough": {"variant": "on"},
    }
    source.update(doc)
    changed = recorder.wait_count(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, 1)
    assert len(changed) == 1
    assert changed[0].flags_changed == ["api.page-size", "new.flag", "ops.kill", "ui.theme"]


def test_same_etag_redelivered__no_event(provider_name: str, recorder: EventRecorder) -> None:
    source = InMemorySource(make_doc())
    api.set_provider_and_wait(FlagappProvider(source=source, name=provider_name))
    source.confirm()
    source.update(make_doc())
    time.sleep(0.2)
    assert recorder.kinds() == ["READY"]


def test_new_version_same_flags__one_event_with_empty_key_list(
    provider_name: str, recorder: EventRecorder
) -> None:
    source = InMemorySource(make_doc())
    api.set_provider_and_wait(FlagappProvider(source=source, name=provider_name))
    source.update(make_doc(2))
    source.update(make_doc(3))
    changed = recorder.wait_count(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, 2)
    assert [c.flags_changed for c in changed] == [[], []]


def test_invalid_snapshot__error_event_with_message__previous_kept(
    provider_name: str, recorder: EventRecorder
) -> None:
    source = InMemorySource(make_doc())
    provider = FlagappProvider(source=source, name=provider_name)
    api.set_provider_and_wait(provider)
    bad = make_doc(2)
    bad["flags"]["ui.theme"]["fallthrough"] = {"variant": "missing"}
    with pytest.raises(InvalidSnapshot):
        source.update(bad)
    with pytest.raises(InvalidSnapshot):
        source.update(bad)
    errors = recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)
    assert len(errors) == 1  # once per failure streak, not per attempt
    assert errors[0].error_code == ErrorCode.PARSE_ERROR
    assert "ui.theme" in (errors[0].message or "")
    assert provider.snapshot is not None and provider.snapshot.version == 1
    assert api.get_client().get_provider_status() == ProviderStatus.ERROR
    assert api.get_client().get_string_value("ui.theme", "x") == "dark"  # still evaluating
    source.update(_changed_doc(3, ui_theme="light"))
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2
    assert len(recorder.of(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)) == 1
    assert api.get_client().get_provider_status() == ProviderStatus.READY


def test_transient_failures__stale_only_after_window__once(
    provider_name: str, recorder: EventRecorder
) -> None:
    source = InMemorySource(make_doc())
    api.set_provider_and_wait(FlagappProvider(source=source, name=provider_name, stale_after=0.3))
    source.fail(SourceUnavailable("connection refused"))
    time.sleep(0.1)
    assert recorder.kinds() == ["READY"]  # inside the window: nothing yet
    time.sleep(0.3)
    source.fail(SourceUnavailable("connection refused"))
    source.fail(SourceUnavailable("connection refused"))
    stale = recorder.wait_count(ProviderEvent.PROVIDER_STALE, 1)
    assert len(stale) == 1 and "connection refused" in (stale[0].message or "")
    assert api.get_client().get_provider_status() == ProviderStatus.STALE
    source.confirm()  # e.g. a 304 from a recovered server
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2
    assert recorder.kinds() == ["READY", "STALE", "READY"]


def test_single_failure_past_window__not_stale_until_repeated(
    provider_name: str, recorder: EventRecorder
) -> None:
    source = InMemorySource(make_doc())
    api.set_provider_and_wait(FlagappProvider(source=source, name=provider_name, stale_after=0.1))
    time.sleep(0.2)
    source.fail(SourceUnavailable("one lost poll"))
    time.sleep(0.2)
    assert recorder.kinds() == ["READY"]
    source.fail(SourceUnavailable("and another"))
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_STALE, 1)) == 1


def test_fatal_error_midrun__provider_error_fatal(
    provider_name: str, recorder: EventRecorder
) -> None:
    source = InMemorySource(make_doc())
    api.set_provider_and_wait(FlagappProvider(source=source, name=provider_name))
    source.fail(AuthenticationError("SDK key rejected (401)", 401), fatal=True)
    errors = recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)
    assert len(errors) == 1 and errors[0].error_code == ErrorCode.PROVIDER_FATAL
    assert "401" in (errors[0].message or "")
    assert api.get_client().get_provider_status() == ProviderStatus.FATAL


def test_init__empty_source_times_out__not_ready_then_ready_when_snapshot_arrives(
    provider_name: str, recorder: EventRecorder
) -> None:
    source = InMemorySource()
    provider = FlagappProvider(source=source, name=provider_name, init_timeout=0.2)
    api.set_provider(provider)
    assert recorder.wait_for(lambda: len(recorder.of(ProviderEvent.PROVIDER_ERROR)) == 1)
    assert recorder.of(ProviderEvent.PROVIDER_ERROR)[0].error_code == ErrorCode.PROVIDER_NOT_READY
    source.update(make_doc())
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 1)) == 1
    assert api.get_client().get_string_value("ui.theme", "x") == "dark"


def test_shutdown__idempotent_and_stops_threads() -> None:
    source = InMemorySource(make_doc())
    provider = FlagappProvider(source=source, event_sink=lambda body: 0, exposure_sample_rate=1.0)
    api.set_provider_and_wait(provider)
    assert any(t.name == "flagapp-events" for t in threading.enumerate())
    provider.shutdown()
    provider.shutdown()
    assert not any(t.name.startswith("flagapp-") for t in threading.enumerate())
    source.update(make_doc(2))  # ignored after shutdown
    assert provider.snapshot is not None and provider.snapshot.version == 1


def test_constructor__neither_url_nor_source__value_error() -> None:
    with pytest.raises(ValueError):
        FlagappProvider()
