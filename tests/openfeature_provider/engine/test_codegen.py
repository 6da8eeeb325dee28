"""The generated per-flag functions: same answers as the reference, no ruleset text as code."""

from __future__ import annotations

from typing import Any

import pytest

from openfeature_provider.engine import codegen, evaluate, parse_ruleset
from tests.openfeature_provider.engine.murmur_reference import reference_variant

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


@pytest.fixture(autouse=True)
def _codegen_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about generated code: on, whatever FLAGAPP_ENGINE_CODEGEN says."""
    monkeypatch.setattr(codegen, "ENABLED", True)


class _Exploding(dict[str, Any]):
    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError(f"boom reading {key}")


def _targeted() -> dict[str, Any]:
    return {
        "kind": "boolean",
        "enabled": True,
        "variants": BOOL,
        "rules": [{"id": "r", "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
                   "serve": {"variant": "on"}}],
        "fallthrough": {"variant": "off"},
    }  # fmt: skip


def test_codegen__exception_inside_generated_code__traceback_shows_generated_line() -> None:
    """Issue 12: generated code keeps its source (linecache), so a traceback is readable."""
    import traceback

    flag = _rs({"f": _targeted()}).flags["f"]
    assert flag.compiled is not None
    with pytest.raises(RuntimeError) as info:
        flag.compiled(_Exploding())
    text = "".join(traceback.format_exception(info.value))
    assert "<flagapp generated flag " in text
    assert "get = ctx.get" in text or "type(v := get(A0_0)) is str" in text


@pytest.mark.parametrize("setting", ["0", "false", "off"])
def test_codegen__disabled_by_env__closures_same_answers(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    from tests.conformance.cases import load_cases

    monkeypatch.setattr(codegen, "ENABLED", None)
    monkeypatch.setenv("FLAGAPP_ENGINE_CODEGEN", setting)
    assert not codegen.codegen_enabled()
    codegen._CODE_CACHE.clear()
    parsed: dict[int, Any] = {}
    for _name, doc, case in load_cases():
        rs = parsed.setdefault(id(doc), parse_ruleset(doc))
        monkeypatch.setattr(codegen, "ENABLED", True)
        generated = parse_ruleset(doc)
        monkeypatch.setattr(codegen, "ENABLED", None)
        for key in rs.flags:
            ctx = case.get("context") or {}
            assert evaluate(rs, key, ctx) == evaluate(generated, key, ctx), (key, ctx)
    # with codegen off, parsing generated nothing
    codegen._CODE_CACHE.clear()
    parse_ruleset({"format": 1, "environment": "t", "version": 1, "flags": {"f": _targeted()}})
    assert codegen._CODE_CACHE == {}
