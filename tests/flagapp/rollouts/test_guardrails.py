"""Guardrail judgement: thresholds, control comparison, and the minimum-sample rule."""

from __future__ import annotations

import pytest

from flagapp.rollouts.guardrails import (
    GuardrailSpec,
    MetricKind,
    Status,
    VariantSample,
    evaluate_guardrail,
    overall_status,
)

ERR = GuardrailSpec(MetricKind.ERROR_RATE, 0.01, min_sample=1000)


def test_evaluate_guardrail__absolute_breach__issue_message() -> None:
    result = evaluate_guardrail(ERR, VariantSample("on", 4210, 130 / 4210, 130), None)
    assert result.status is Status.BREACH
    assert result.message == "error_rate 3.1% > 1.0% (n=4,210)"


def test_evaluate_guardrail__absolute_below_threshold__ok() -> None:
    result = evaluate_guardrail(ERR, VariantSample("on", 5000, 0.004, 20), None)
    assert result.status is Status.OK
    assert result.message == "error_rate 0.4% <= 1.0% (n=5,000)"


def test_evaluate_guardrail__below_min_sample__insufficient_even_if_terrible() -> None:
    result = evaluate_guardrail(ERR, VariantSample("on", 999, 0.5, 500), None)
    assert result.status is Status.INSUFFICIENT
    assert "n=999 < minimum sample 1,000" in result.message


def test_evaluate_guardrail__no_treatment_data__insufficient() -> None:
    assert evaluate_guardrail(ERR, None, None).status is Status.INSUFFICIENT


def test_evaluate_guardrail__delta_vs_control__breach_message_with_pp() -> None:
    spec = GuardrailSpec(MetricKind.ERROR_RATE, 0.01, comparison="delta", min_sample=100)
    result = evaluate_guardrail(
        spec, VariantSample("on", 2000, 0.031, 62), VariantSample("off", 50000, 0.009, 450)
    )
    assert result.status is Status.BREACH
    assert result.message == "error_rate 3.1% vs control 0.9%: +2.2pp > +1.0pp (n=2,000)"


def test_evaluate_guardrail__delta_control_too_small__insufficient() -> None:
    spec = GuardrailSpec(MetricKind.ERROR_RATE, 0.01, comparison="delta", min_sample=100)
    result = evaluate_guardrail(spec, VariantSample("on", 2000, 0.5), VariantSample("off", 10, 0.0))
    assert result.status is Status.INSUFFICIENT
    assert "control" in result.message


def test_evaluate_guardrail__latency_ratio__ok_and_breach() -> None:
    spec = GuardrailSpec(
        MetricKind.LATENCY,
        1.5,
        event_key="latency_ms",
        percentile=95,
        comparison="ratio",
        min_sample=10,
    )
    ok = evaluate_guardrail(spec, VariantSample("on", 50, 280.0), VariantSample("off", 900, 200.0))
    bad = evaluate_guardrail(spec, VariantSample("on", 50, 420.0), VariantSample("off", 900, 200.0))
    assert ok.status is Status.OK
    assert bad.status is Status.BREACH
    assert bad.message == "latency_ms_p95 420.0 vs control 200.0: x2.10 > x1.50 (n=50)"


def test_evaluate_guardrail__ratio_zero_control__infinite_ratio_breaches() -> None:
    spec = GuardrailSpec(
        MetricKind.EVENT_RATE, 2.0, event_key="refund", comparison="ratio", min_sample=1
    )
    result = evaluate_guardrail(spec, VariantSample("on", 10, 0.1), VariantSample("off", 10, 0.0))
    assert result.status is Status.BREACH
    assert spec.label == "refund_rate"


def test_overall_status__precedence__breach_then_insufficient_then_ok() -> None:
    ok = evaluate_guardrail(ERR, VariantSample("on", 5000, 0.0), None)
    low = evaluate_guardrail(ERR, VariantSample("on", 5, 0.0), None)
    bad = evaluate_guardrail(ERR, VariantSample("on", 5000, 0.5), None)
    assert overall_status([ok, low, bad]) is Status.BREACH
    assert overall_status([ok, low]) is Status.INSUFFICIENT
    assert overall_status([ok]) is Status.OK
    assert overall_status([]) is Status.OK


@pytest.mark.parametrize("comparison", ["absolute", "delta", "ratio"])
def test_guardrail_result__as_dict__json_roundtrip_fields(comparison: str) -> None:
    spec = GuardrailSpec(MetricKind.ERROR_RATE, 1.5, comparison=comparison, min_sample=1)
    d = evaluate_guardrail(
        spec, VariantSample("on", 10, 0.1), VariantSample("off", 10, 0.1)
    ).as_dict()
    assert d["status"] == "ok" and d["label"] == "error_rate" and d["n"] == 10
