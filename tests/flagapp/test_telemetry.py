"""OpenTelemetry ``feature_flag.evaluation`` events from ``flagapp.evaluate`` (issue 14 part
4): the same attributes as the provider's hook, checked with the SDK's in-memory exporters
installed as the global providers (what a project's OpenTelemetry setup does)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings

import flagapp
from flagapp import telemetry
from flagapp.evaluation import api
from tests.flagapp.eval_helpers import flag_doc, install_flags_fixture  # noqa: F401 - fixture
from tests.flagapp.exposure_views import FLAG

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from openfeature_provider.otel import EVENT_NAME

_LOGS = InMemoryLogRecordExporter()
_SPANS = InMemorySpanExporter()
_installed = False


def _install_global_providers() -> None:
    """Once per process: OpenTelemetry's global providers can be set only once."""
    global _installed
    if _installed:
        return
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(_LOGS))
    set_logger_provider(logger_provider)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(_SPANS))
    trace.set_tracer_provider(tracer_provider)
    _installed = True


ON = {"ENVIRONMENT": "production", "SINGLE_PROCESS": True, "OPENTELEMETRY": True}


@pytest.fixture
def exported() -> Iterator[None]:
    _install_global_providers()
    _LOGS.clear()
    _SPANS.clear()
    yield
    _LOGS.clear()
    _SPANS.clear()


def _records() -> list[dict[str, Any]]:
    out = []
    for item in _LOGS.get_finished_logs():
        assert item.log_record.event_name == EVENT_NAME
        out.append(dict(item.log_record.attributes or {}))
    return out


def test_evaluate__opentelemetry_off__no_emitter_installed(db: Any, install_flags: Any) -> None:
    assert api._telemetry is None
    install_flags({FLAG: flag_doc()})
    assert flagapp.flag_is_active({"targetingKey": "u1"}, FLAG) is True


def test_evaluate__opentelemetry_on__log_record_with_semconv_attributes(
    db: Any, exported: None, install_flags: Any
) -> None:
    install_flags({FLAG: flag_doc()}, version=4)
    with override_settings(FLAGAPP=ON):
        assert flagapp.flag_is_active({"targetingKey": "u1"}, FLAG) is True
        assert flagapp.get_value({}, "no.such-flag", "x") == "x"
    assert api._telemetry is None  # off again with the setting
    hit, miss = _records()
    assert hit == {
        "feature_flag.key": FLAG,
        "feature_flag.provider.name": "flagapp",
        "feature_flag.result.variant": "on",
        "feature_flag.result.reason": "static",
        "feature_flag.set.id": "production",
        "feature_flag.version": "4",
    }
    assert miss["error.type"] == "flag_not_found"
    assert miss["feature_flag.result.reason"] == "error"
    assert miss["feature_flag.set.id"] == "production"


@pytest.mark.urls("tests.flagapp.exposure_views")
def test_view__traced_request__span_event_on_the_request_span(
    db: Any, exported: None, install_flags: Any
) -> None:
    install_flags({FLAG: flag_doc(enabled=False)}, environment="staging", version=9)
    settings = {**ON, "ENVIRONMENT": "staging", "OPENTELEMETRY": {"log_records": False}}
    tracer = trace.get_tracer("tests")
    with override_settings(FLAGAPP=settings), tracer.start_as_current_span("GET /shop/"):
        assert Client().get("/shop/").content == b"grey"
    assert _records() == []
    (span,) = _SPANS.get_finished_spans()
    (event,) = span.events
    assert event.name == EVENT_NAME
    assert dict(event.attributes or {}) == {
        "feature_flag.key": FLAG,
        "feature_flag.provider.name": "flagapp",
        "feature_flag.result.reason": "disabled",
        "feature_flag.set.id": "staging",
        "feature_flag.version": "9",
    }


def test_opentelemetry_setting__unknown_option__error_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = {"ENVIRONMENT": "production", "OPENTELEMETRY": {"include_values": True}}
    with caplog.at_level("ERROR", logger="flagapp"), override_settings(FLAGAPP=bad):
        assert api._telemetry is None  # turned off, not half-configured
        with pytest.raises(ValueError, match="include_values"):
            telemetry.configure()
    assert "include_values" in caplog.text
