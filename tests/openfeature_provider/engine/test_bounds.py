"""Parser bounds every SDK and the server agree on (issue 10 item 7, issue 11 finding 7).

Before: weights and integers had no upper bound (10^400 was accepted and published, which
breaks int64 and JavaScript clients and flagd); a 600-level object variant was served by OFREP
while the provider's copy hit RecursionError and served the default; NaN/Infinity (which
Python's json accepts) slipped into condition values and object variants; deep JSON text made
the parser raise RecursionError instead of ParseError.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest

from openfeature_provider.engine import (
    MAX_INTEGER,
    MAX_OBJECT_DEPTH,
    MAX_TOTAL_WEIGHT,
    MIN_INTEGER,
    ParseError,
    evaluate,
    parse_ruleset,
)


def _doc(flag: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"format": 1, "environment": "t", "version": 1, "flags": {"f": flag}, **top}


def _rollout(*weights: int) -> dict[str, Any]:
    weighted = [{"variant": f"v{i}", "weight": w} for i, w in enumerate(weights)]
    return {
        "kind": "string",
        "enabled": True,
        "variants": {w["variant"]: w["variant"] for w in weighted},
        "fallthrough": {"rollout": {"weights": weighted}},
    }


def _nested(depth: int) -> Any:
    """A value ``depth`` containers deep (``{}`` alone is depth 1), built without recursion."""
    value: Any = {"leaf": 1}
    for i in range(depth - 1):
        value = {"k": value} if i % 2 else [value]
    return value


def test_limits__documented_values() -> None:
    assert (MAX_TOTAL_WEIGHT, MAX_OBJECT_DEPTH) == (2_147_483_647, 64)
    assert (MIN_INTEGER, MAX_INTEGER) == (-(2**63), 2**63 - 1)


def test_parse__weight_total_at_flagd_bound__accepted() -> None:
    rs = parse_ruleset(_doc(_rollout(MAX_TOTAL_WEIGHT - 7, 7)))
    assert evaluate(rs, "f", {"targetingKey": "u"}).reason == "SPLIT"


@pytest.mark.parametrize(
    ("weights", "path"),
    [
        ((MAX_TOTAL_WEIGHT, 1), '$.flags["f"].fallthrough.rollout.weights'),
        ((1, 10**400), '$.flags["f"].fallthrough.rollout.weights[1].weight'),
        ((2**31,), '$.flags["f"].fallthrough.rollout.weights[0].weight'),
    ],
)
def test_parse__weight_total_over_flagd_bound__parse_error_with_path(
    weights: tuple[int, ...], path: str
) -> None:
    with pytest.raises(ParseError) as info:
        parse_ruleset(_doc(_rollout(*weights)))
    assert info.value.path == path
    assert "2,147,483,647" in info.value.message


@pytest.mark.parametrize("value", [MIN_INTEGER, MAX_INTEGER, 0])
def test_parse__integer_variant_within_int64__accepted(value: int) -> None:
    flag = {"kind": "integer", "enabled": True, "variants": {"n": value},
            "fallthrough": {"variant": "n"}}  # fmt: skip
    assert evaluate(parse_ruleset(_doc(flag)), "f", {}).value == value


@pytest.mark.parametrize("value", [MAX_INTEGER + 1, MIN_INTEGER - 1, 10**400])
def test_parse__integer_variant_outside_int64__parse_error_with_path(value: int) -> None:
    flag = {"kind": "integer", "enabled": True, "variants": {"n": value}}
    with pytest.raises(ParseError) as info:
        parse_ruleset(_doc(flag))
    assert info.value.path == '$.flags["f"].variants["n"]'
    assert "64-bit" in info.value.message


def test_parse__object_variant_at_max_depth__accepted_and_copyable() -> None:
    value = _nested(MAX_OBJECT_DEPTH)
    flag = {"kind": "object", "enabled": True, "variants": {"deep": value},
            "fallthrough": {"variant": "deep"}}  # fmt: skip
    res = evaluate(parse_ruleset(_doc(flag)), "f", {})
    assert res.value == value
    # what the provider and the Django views do with it must stay far from Python's limits
    assert copy.deepcopy(res.value) == value
    assert json.loads(json.dumps(res.value)) == value


@pytest.mark.parametrize("depth", [MAX_OBJECT_DEPTH + 1, 600, 100_000])
def test_parse__object_variant_deeper_than_bound__parse_error_names_path(depth: int) -> None:
    flag = {"kind": "object", "enabled": True, "variants": {"deep": _nested(depth)}}
    with pytest.raises(ParseError) as info:
        parse_ruleset(_doc(flag))
    path = info.value.path
    assert path.startswith('$.flags["f"].variants["deep"]')
    assert path.count("[") - 2 == MAX_OBJECT_DEPTH  # points at the first container too deep
    assert "64" in info.value.message


def test_parse__deep_json_text__parse_error_not_recursion_error() -> None:
    text = '{"format": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(ParseError) as info:
        parse_ruleset(text)
    assert info.value.path == "$"
    assert "deep" in info.value.message


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda f: f["variants"].update(x={"a": [1, math.nan]}),
         '$.flags["f"].variants["x"]["a"][1]'),
        (lambda f: f["variants"].update(x={"a": math.inf}), '$.flags["f"].variants["x"]["a"]'),
        (lambda f: f["variants"].update(x=[10**400]), '$.flags["f"].variants["x"][0]'),
        (lambda f: f["rules"][0]["when"][0].update(values=[math.nan]),
         '$.flags["f"].rules[0].when[0].values[0]'),
        (lambda f: f["rules"][0]["when"][0].update(op="lt", values=[-math.inf]),
         '$.flags["f"].rules[0].when[0].values[0]'),
        (lambda f: f["rules"][0]["when"][0].update(op="in", values=["a", 2**64]),
         '$.flags["f"].rules[0].when[0].values[1]'),
        (lambda f: f.update(metadata={"n": 10**30}), '$.flags["f"].metadata["n"]'),
    ],
)  # fmt: skip
def test_parse__non_finite_or_huge_number__parse_error_with_path(mutate: Any, path: str) -> None:
    flag: dict[str, Any] = {
        "kind": "object",
        "enabled": True,
        "variants": {"o": {}},
        "rules": [{"id": "r", "when": [{"attr": "a", "op": "eq", "values": [1]}],
                   "serve": {"variant": "o"}}],
    }  # fmt: skip
    mutate(flag)
    with pytest.raises(ParseError) as info:
        parse_ruleset(_doc(flag))
    assert info.value.path == path


def test_parse__version_outside_int64__parse_error() -> None:
    flag = {"kind": "boolean", "enabled": True, "variants": {"on": True}}
    with pytest.raises(ParseError) as info:
        parse_ruleset({**_doc(flag), "version": 2**63})
    assert info.value.path == "$.version"


def test_parse__nan_in_json_text__parse_error_with_path() -> None:
    text = (
        '{"format": 1, "environment": "t", "version": 1, "flags": {"f": {"kind": "float",'
        ' "enabled": true, "variants": {"x": NaN}}}}'
    )
    with pytest.raises(ParseError) as info:
        parse_ruleset(text)
    assert info.value.path == '$.flags["f"].variants["x"]'
