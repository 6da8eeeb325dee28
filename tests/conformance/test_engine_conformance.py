"""The shared conformance cases, run against the engine directly."""

from __future__ import annotations

import math
from typing import Any

import pytest

from openfeature_provider.engine import evaluate, parse_ruleset
from tests.conformance.cases import load_cases, load_files

CASES = list(load_cases())
_PARSED: dict[int, Any] = {}


def _ruleset(doc: dict[str, Any]) -> Any:
    # Parse each file's ruleset once (cases of a file share the same document object).
    if id(doc) not in _PARSED:
        _PARSED[id(doc)] = parse_ruleset(doc)
    return _PARSED[id(doc)]


def _same(a: Any, b: Any) -> bool:
    """Equality that also tells 1 from 1.0 from True: a float flag must serve floats."""
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and math.isclose(a, b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(("name", "ruleset_doc", "case"), CASES, ids=[c[0] for c in CASES])
def test_conformance__engine__matches_expected(
    name: str, ruleset_doc: dict[str, Any], case: dict[str, Any]
) -> None:
    res = evaluate(_ruleset(ruleset_doc), case["flag"], case["context"], case["kind"])
    value = case["default"] if res.use_default else res.value
    expected = case["expected"]
    got = {
        "value": value,
        "variant": res.variant,
        "reason": res.reason,
        "errorCode": res.error_code,
    }
    assert got == expected
    assert _same(value, expected["value"])
    if not res.use_default:
        assert res.metadata["snapshotVersion"] == ruleset_doc["version"]


def test_conformance__case_files__each_has_description_and_cases() -> None:
    files = list(load_files())
    assert len(files) >= 20
    for stem, doc in files:
        assert set(doc) == {"description", "ruleset", "cases"}, stem
        assert doc["description"] and doc["cases"], stem
        for case in doc["cases"]:
            assert set(case) == {"flag", "kind", "context", "default", "expected"}, stem
            assert set(case["expected"]) == {"value", "variant", "reason", "errorCode"}, stem
