"""OpenTelemetry ``feature_flag.evaluation`` events from the OpenFeature client (issue 14
part 4), checked with the OpenTelemetry SDK's in-memory exporters (log records and spans)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext

from openfeature_provider import FlagappProvider, InMemorySource
from tests.openfeature_provider.conftest import make_doc

pytest.importorskip("opentelemetry.sdk")

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

from openfeature_provider.otel import EVENT_NAME, OpenTelemetryHook


class Telemetry:
    def __init__(self) -> None:
        self.logs = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))

    def records(self) -> list[dict[str, Any]]:
        out = []
        for item in self.logs.get_finished_logs():
            record = item.log_record
            assert record.event_name == EVENT_NAME
            out.append(dict(record.attributes or {}))
        return out


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.logger_provider.shutdown()
    t.tracer_provider.shutdown()


@pytest.fixture
def client_with_hook(telemetry: Telemetry) -> Iterator[Any]:
    doc = make_doc(version=12)
    doc["environment"] = "staging"
    provider = FlagappProvider(source=InMemorySource(doc), send_usage=False)
    domain = f"otel-{uuid.uuid4().hex}"
    api.set_provider_and_wait(provider, domain)
    client = api.get_client(domain)
    client.add_hooks([OpenTelemetryHook(provider, logger_provider=telemetry.logger_provider)])
    yield client
    api.clear_providers()


def test_hook__targeting_match__log_record_with_semconv_attributes(
    telemetry: Telemetry, client_with_hook: Any
) -> None:
    ctx = EvaluationContext("user-1", {"plan": "pro"})
    assert client_with_hook.get_boolean_value("checkout.new-flow", False, ctx) is True
    assert telemetry.records() == [
        {
            "feature_flag.key": "checkout.new-flow",
            "feature_flag.provider.name": "flagapp",
            "feature_flag.result.variant": "on",
            "feature_flag.result.reason": "targeting_match",
            "feature_flag.set.id": "staging",
            "feature_flag.version": "12",
        }
    ]


def test_hook__unknown_flag__error_type_and_message(
    telemetry: Telemetry, client_with_hook: Any
) -> None:
    assert client_with_hook.get_string_value("no.such-flag", "x") == "x"
    (record,) = telemetry.records()
    assert record["feature_flag.key"] == "no.such-flag"
    assert record["feature_flag.result.reason"] == "error"
    assert record["error.type"] == "flag_not_found"
    assert "no.such-flag" in record["feature_flag.error.message"]
    assert "feature_flag.result.variant" not in record


def test_hook__type_mismatch__error_type(telemetry: Telemetry, client_with_hook: Any) -> None:
    assert client_with_hook.get_integer_value("ui.theme", 3) == 3
    (record,) = telemetry.records()
    assert (record["error.type"], record["feature_flag.set.id"]) == ("type_mismatch", "staging")


def test_hook__inside_a_span__span_event_with_the_same_attributes(
    telemetry: Telemetry, client_with_hook: Any
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("tests")
    with tracer.start_as_current_span("GET /checkout"):
        client_with_hook.get_string_value("ui.theme", "light")
    (span,) = telemetry.spans.get_finished_spans()
    (event,) = span.events
    assert event.name == EVENT_NAME
    assert dict(event.attributes or {}) == telemetry.records()[0]
    assert event.attributes is not None
    assert event.attributes["feature_flag.result.reason"] == "static"


def test_hook__no_value_or_targeting_key_unless_asked(telemetry: Telemetry) -> None:
    provider = FlagappProvider(source=InMemorySource(make_doc()), send_usage=False)
    domain = f"otel-{uuid.uuid4().hex}"
    api.set_provider_and_wait(provider, domain)
    client = api.get_client(domain)
    ctx = EvaluationContext("user-7", {"plan": "free"})
    try:
        client.add_hooks([OpenTelemetryHook(logger_provider=telemetry.logger_provider)])
        client.get_string_value("ui.theme", "light", ctx)
        client.hooks.clear()
        client.add_hooks(
            [
                OpenTelemetryHook(
                    logger_provider=telemetry.logger_provider,
                    include_value=True,
                    include_context_id=True,
                )
            ]
        )
        client.get_string_value("ui.theme", "light", ctx)
    finally:
        api.clear_providers()
    plain, opted_in = telemetry.records()
    assert not {"feature_flag.result.value", "feature_flag.context.id"} & set(plain)
    assert "feature_flag.set.id" not in plain  # no provider given to the hook
    assert (opted_in["feature_flag.result.value"], opted_in["feature_flag.context.id"]) == (
        "dark",
        "user-7",
    )


def test_hook__log_records_off__span_event_only(telemetry: Telemetry) -> None:
    provider = FlagappProvider(source=InMemorySource(make_doc()), send_usage=False)
    domain = f"otel-{uuid.uuid4().hex}"
    api.set_provider_and_wait(provider, domain)
    client = api.get_client(domain)
    client.add_hooks([OpenTelemetryHook(provider, log_records=False)])
    tracer = telemetry.tracer_provider.get_tracer("tests")
    try:
        with tracer.start_as_current_span("job"):
            client.get_boolean_value("checkout.new-flow", False)
    finally:
        api.clear_providers()
    assert telemetry.records() == []
    (span,) = telemetry.spans.get_finished_spans()
    assert [e.name for e in span.events] == [EVENT_NAME]
