"""adapt.py: Resolution + the caller's default -> what is served (one adapter, issue 12)."""

from __future__ import annotations

from typing import Any

from openfeature_provider.engine import (
    MAX_OBJECT_DEPTH,
    Served,
    ServedCache,
    copy_value,
    evaluate,
    parse_ruleset,
    served,
)

FLAGS: dict[str, Any] = {
    "on": {"kind": "boolean", "enabled": True, "variants": {"on": True},
           "fallthrough": {"variant": "on"}},
    "off": {"kind": "boolean", "enabled": False, "variants": {"on": True}},
    "num": {"kind": "float", "enabled": True, "variants": {"one": 1},
            "fallthrough": {"variant": "one"}},
    "split": {"kind": "string", "enabled": True, "variants": {"a": "A"},
              "fallthrough": {"rollout": {"weights": [{"variant": "a", "weight": 1}]}}},
}  # fmt: skip
RS = parse_ruleset({"format": 1, "environment": "t", "version": 1, "flags": FLAGS})


def test_served__value__variant_reason_no_error() -> None:
    assert served(evaluate(RS, "on", {}), False) == Served(True, "on", "STATIC")


def test_served__disabled__default_with_reason_no_error() -> None:
    out = served(evaluate(RS, "off", {}), "dflt")
    assert out == Served("dflt", None, "DISABLED") and out.is_default


def test_served__error__default_reason_error_code_and_message() -> None:
    out = served(evaluate(RS, "split", {}), "dflt")
    assert (out.value, out.variant, out.reason, out.error_code) == (
        "dflt", None, "ERROR", "TARGETING_KEY_MISSING"
    )  # fmt: skip
    assert out.error_message
    missing = served(evaluate(RS, "nope", {}), 7)
    assert (missing.value, missing.error_code) == (7, "FLAG_NOT_FOUND")


def test_served__float_requested__served_as_float() -> None:
    out = served(evaluate(RS, "num", {}, "float"), 0.0, "float")
    assert out.value == 1.0 and type(out.value) is float


def test_served_cache__same_resolution__same_object_defaults_not_cached() -> None:
    cache = ServedCache(limit=2)
    res = evaluate(RS, "on", {})
    assert cache(res, False) is cache(res, False)
    off = evaluate(RS, "off", {})
    assert cache(off, 1).value == 1 and cache(off, 2).value == 2


def test_copy_value__deep_value__equal_independent_no_recursion() -> None:
    value: Any = {"leaf": [1, {"x": "y"}]}
    for i in range(50_000):
        value = [value] if i % 2 else {"k": value, "n": i}
    copied = copy_value(value)
    node, orig = copied, value
    for _ in range(50_000):  # walk both iteratively: equal shape, distinct containers
        assert node is not orig and type(node) is type(orig)
        node, orig = (node[0], orig[0]) if isinstance(orig, list) else (node["k"], orig["k"])
    assert node == orig and node is not orig
    assert copy_value(5) == 5 and copy_value((1, [2])) == [1, [2]]
    shallow = {"a": [1]}
    assert copy_value(shallow)["a"] is not shallow["a"]
    assert MAX_OBJECT_DEPTH == 64
