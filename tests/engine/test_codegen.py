"""The generated per-flag functions: same answers as the reference, no ruleset text as code."""

from __future__ import annotations

from typing import Any

import pytest

from openfeature_provider.engine import codegen, evaluate, parse_ruleset
from tests.engine.murmur_reference import reference_variant

BOOL = {"on": True, "off": False}
W3 = [("a", 50), ("b", 25), ("c", 25)]


def _rs(flags: dict[str, Any]) -> Any:
    return parse_ruleset({"format": 1, "environment": "t", "version": 1, "flags": flags})


NASTY = "x') or True or ('"  # would change the logic if it were pasted into source


def test_codegen__hostile_attribute_and_values__treated_as_data() -> None:
    rs = _rs(
        {
            "f": {
                "kind": "boolean",
                "enabled": True,
                "variants": BOOL,
                "rules": [
                    {
                        "id": "r\n    return None",
                        "when": [{"attr": NASTY, "op": "eq", "values": ['"; import os; "', NASTY]}],
                        "serve": {"variant": "on"},
                    }
                ],
                "fallthrough": {"variant": "off"},
            }
        }
    )
    assert evaluate(rs, "f", {NASTY: NASTY}).variant == "on"
    assert evaluate(rs, "f", {NASTY: '"; import os; "'}).rule_id == "r\n    return None"
    assert evaluate(rs, "f", {NASTY: "other"}).variant == "off"
    assert evaluate(rs, "f", {}).variant == "off"
    for source in codegen._CODE_CACHE:
        assert "import os" not in source and NASTY not in source


@pytest.mark.parametrize("key", ["u1", "u2", "u3", "alice", "", "bob", "carol", "dave"])
def test_codegen__rule_with_three_variant_rollout__matches_reference(key: str) -> None:
    rs = _rs(
        {
            "f": {
                "kind": "string",
                "enabled": True,
                "variants": {"a": "A", "b": "B", "c": "C", "z": "Z"},
                "rules": [
                    {
                        "id": "beta",
                        "when": [{"attr": "beta", "op": "eq", "values": [True]}],
                        "serve": {
                            "rollout": {
                                "weights": [{"variant": v, "weight": w} for v, w in W3],
                                "bucket_by": "org",
                                "salt": "s",
                            }
                        },
                    },
                    {
                        "id": "single",
                        "when": [{"attr": "single", "op": "exists"}],
                        "serve": {"rollout": {"weights": [{"variant": "z", "weight": 3}]}},
                    },
                ],
            }
        }
    )
    res = evaluate(rs, "f", {"beta": True, "org": key})
    assert (res.variant, res.reason, res.rule_id) == (
        reference_variant("s", key, W3),
        "SPLIT",
        "beta",
    )
    assert evaluate(rs, "f", {"beta": True}).error_code == "TARGETING_KEY_MISSING"
    assert evaluate(rs, "f", {"single": 1, "targetingKey": key}).variant == "z"
    assert evaluate(rs, "f", {"single": 1}).error_code == "TARGETING_KEY_MISSING"
    none = evaluate(rs, "f", {"targetingKey": key})
    assert (none.use_default, none.reason) == (True, "DEFAULT")


def test_codegen__same_shape_flags__share_one_compiled_source() -> None:
    def flag(plan: str) -> dict[str, Any]:
        return {
            "kind": "boolean",
            "enabled": True,
            "variants": BOOL,
            "rules": [
                {"id": plan, "when": [{"attr": "plan", "op": "neq", "values": [plan]}],
                 "serve": {"variant": "on"}}
            ],
            "fallthrough": {"variant": "off"},
        }  # fmt: skip

    codegen._CODE_CACHE.clear()
    rs = _rs({f"f{i}": flag(f"p{i}") for i in range(50)})
    assert len(codegen._CODE_CACHE) == 1
    assert evaluate(rs, "f3", {"plan": "p3"}).variant == "off"
    assert evaluate(rs, "f3", {"plan": "p4"}).variant == "on"
    assert evaluate(rs, "f3", {"plan": 4}).variant == "off"  # unusable type: never matches
