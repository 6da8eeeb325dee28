"""The shared conformance cases (tests/conformance), run through the real OpenFeature client."""

from __future__ import annotations

import math
from typing import Any

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationDetails

from openfeature_provider import FlagappProvider, InMemorySource

try:
    from tests.conformance.cases import load_cases
except ImportError:  # pragma: no cover - the engine helper's loader not there yet
    load_cases = None  # type: ignore[assignment]

CASES = list(load_cases()) if load_cases is not None else []
_CLIENTS: dict[int, OpenFeatureClient] = {}


def _client(doc: dict[str, Any]) -> OpenFeatureClient:
    """One provider per case file, bound to its own domain, set up once."""
    key = id(doc)
    if key not in _CLIENTS:
        domain = f"conformance-{key}"
        api.set_provider_and_wait(FlagappProvider(source=InMemorySource(doc)), domain)
        _CLIENTS[key] = api.get_client(domain)
    return _CLIENTS[key]


def _context(ctx: dict[str, Any]) -> EvaluationContext:
    # The SDK's context merge turns a "" targeting key into None, so only a non-empty string
    # travels as the targeting key; anything else stays an attribute for the engine to judge.
    tk = ctx.get("targetingKey")
    if isinstance(tk, str) and tk:
        return EvaluationContext(tk, {k: v for k, v in ctx.items() if k != "targetingKey"})
    return EvaluationContext(None, dict(ctx))


def _details(client: OpenFeatureClient, case: dict[str, Any]) -> FlagEvaluationDetails[Any]:
    method = {
        "boolean": client.get_boolean_details,
        "string": client.get_string_details,
        "integer": client.get_integer_details,
        "float": client.get_float_details,
        "object": client.get_object_details,
    }[case["kind"]]
    return method(case["flag"], case["default"], _context(case["context"]))  # type: ignore[operator]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and math.isclose(a, b)
    return type(a) is type(b) and a == b


@pytest.fixture(scope="module", autouse=True)
def _providers() -> Any:
    yield
    api.clear_providers()
    _CLIENTS.clear()


@pytest.fixture(autouse=True)
def _reset_openfeature() -> None:  # override: keep providers for the whole module
    return None


@pytest.mark.skipif(not CASES, reason="tests/conformance/cases.py not available yet")
@pytest.mark.parametrize(("name", "ruleset_doc", "case"), CASES, ids=[c[0] for c in CASES])
def test_conformance__through_sdk_client__matches_expected(
    name: str, ruleset_doc: dict[str, Any], case: dict[str, Any]
) -> None:
    details = _details(_client(ruleset_doc), case)
    expected = case["expected"]
    got = {
        "value": details.value,
        "variant": details.variant,
        "reason": None if details.reason is None else str(details.reason),
        "errorCode": None if details.error_code is None else details.error_code.value,
    }
    assert got == expected
    assert _same(details.value, expected["value"])
    if expected["errorCode"] is None:
        assert details.flag_metadata["snapshotVersion"] == ruleset_doc["version"]
