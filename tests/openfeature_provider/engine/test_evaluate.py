"""Evaluation semantics beyond the shared conformance cases: metadata, rule ids, robustness,
evaluate_all and changed_flag_keys."""

from __future__ import annotations

import copy
import dataclasses
from collections import UserDict
from typing import Any

import pytest

from openfeature_provider.engine import (
    KINDS,
    ErrorCode,
    Reason,
    changed_flag_keys,
    evaluate,
    evaluate_all,
    parse_ruleset,
)

BOOL = {"on": True, "off": False}


def doc() -> dict[str, Any]:
    return {
        "format": 1,
        "environment": "prod",
        "version": 42,
        "flags": {
            "checkout.new-flow": {
                "kind": "boolean",
                "enabled": True,
                "variants": BOOL,
                "prerequisites": [{"flag": "payments.v2", "variants": ["on"]}],
                "rules": [
                    {
                        "id": "r1",
                        "when": [
                            {"attr": "plan", "op": "in", "values": ["enterprise", "pro"]},
                            {"attr": "country", "op": "eq", "values": ["US"]},
                        ],
                        "serve": {"variant": "on"},
                    },
                    {
                        "id": "r2",
                        "when": [{"op": "in_segment", "values": ["beta"]}],
                        "serve": {
                            "rollout": {
                                "weights": [
                                    {"variant": "on", "weight": 1},
                                    {"variant": "off", "weight": 0},
                                ]
                            }
                        },
                    },
                ],
                "fallthrough": {"variant": "off"},
                "metadata": {"owner": "payments", "type": "release", "version": 7},
            },
            "payments.v2": {
                "kind": "boolean",
                "enabled": True,
                "variants": BOOL,
                "fallthrough": {"variant": "on"},
            },
            "ui.theme": {
                "kind": "string",
                "enabled": True,
                "variants": {"dark": "dark"},
                "rules": [
                    {"id": "staff", "when": [{"op": "in_segment", "values": ["staff"]}],
                     "serve": {"variant": "dark"}}
                ],
            },
        },
        "segments": {"beta": {"include": ["u-beta"]}, "staff": {"include": ["u-staff"]}},
    }  # fmt: skip


@pytest.fixture(scope="module")
def rs() -> Any:
    return parse_ruleset(doc())


def test_evaluate__rule_match__carries_rule_id_variant_and_metadata(rs: Any) -> None:
    res = evaluate(rs, "checkout.new-flow", {"targetingKey": "u", "plan": "pro", "country": "US"})
    assert (res.value, res.variant, res.reason, res.rule_id) == (
        True,
        "on",
        "TARGETING_MATCH",
        "r1",
    )
    assert res.use_default is False and res.error_code is None
    assert dict(res.metadata) == {
        "owner": "payments",
        "type": "release",
        "version": 7,
        "snapshotVersion": 42,
    }


def test_evaluate__rule_rollout__split_names_rule(rs: Any) -> None:
    res = evaluate(rs, "checkout.new-flow", {"targetingKey": "u-beta"})
    assert (res.reason, res.rule_id, res.variant) == (Reason.SPLIT, "r2", "on")


def test_evaluate__fallthrough__has_no_rule_id(rs: Any) -> None:
    res = evaluate(rs, "checkout.new-flow", {"targetingKey": "x"})
    assert (res.reason, res.rule_id, res.variant) == (Reason.DEFAULT, None, "off")


def test_evaluate__metadata_mapping__is_read_only(rs: Any) -> None:
    res = evaluate(rs, "payments.v2", {})
    with pytest.raises(TypeError):
        res.metadata["owner"] = "me"  # type: ignore[index]


def test_evaluate__static_flag__same_prebuilt_resolution_each_call(rs: Any) -> None:
    assert evaluate(rs, "payments.v2", {"a": 1}) is evaluate(rs, "payments.v2", {"b": 2})


def test_evaluate__no_fallthrough_key__serves_default(rs: Any) -> None:
    res = evaluate(rs, "ui.theme", {"targetingKey": "x"}, "string")
    assert (res.use_default, res.reason, res.variant) == (True, Reason.DEFAULT, None)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "boolean"])
def test_evaluate__other_kind_requested__type_mismatch(rs: Any, kind: str) -> None:
    res = evaluate(rs, "payments.v2", {}, kind)
    assert (res.use_default, res.reason, res.error_code) == (True, "ERROR", "TYPE_MISMATCH")
    assert res.error_message and "boolean" in res.error_message


def test_evaluate__none_context__treated_as_empty(rs: Any) -> None:
    assert evaluate(rs, "payments.v2", None).variant == "on"


def test_evaluate__mapping_that_is_not_a_dict__accepted(rs: Any) -> None:
    ctx = UserDict({"targetingKey": "u", "plan": "pro", "country": "US"})
    assert evaluate(rs, "checkout.new-flow", ctx).rule_id == "r1"


@pytest.mark.parametrize("ctx", [["targetingKey", "u"], "u1", 5])
def test_evaluate__context_not_a_mapping__invalid_context(rs: Any, ctx: Any) -> None:
    res = evaluate(rs, "payments.v2", ctx)
    assert (res.use_default, res.error_code) == (True, ErrorCode.INVALID_CONTEXT)


def test_evaluate__unhashable_key__general_error_not_raise(rs: Any) -> None:
    res = evaluate(rs, ["x"], {})  # type: ignore[arg-type]
    assert res.use_default and res.error_code == ErrorCode.GENERAL


def test_evaluate__compiled_closure_raises__general_error(rs: Any) -> None:
    def boom(ctx: Any) -> Any:
        raise RuntimeError("bug")

    broken_flag = dataclasses.replace(rs.flags["payments.v2"], compiled=boom)
    broken = dataclasses.replace(rs, flags={"payments.v2": broken_flag})
    res = evaluate(broken, "payments.v2", {})
    assert (res.use_default, res.error_code) == (True, ErrorCode.GENERAL)
    assert "RuntimeError: bug" in (res.error_message or "")


def test_evaluate__attribute_mapping_raising__general_error_not_raise(rs: Any) -> None:
    class Hostile(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            raise KeyError(key)

    res = evaluate(rs, "checkout.new-flow", Hostile())
    assert res.use_default and res.reason == Reason.ERROR


def test_evaluate__prerequisite_raises__counts_as_not_met() -> None:
    class Exploding(dict[str, Any]):
        """Reading ``plan`` (only the prerequisite's rule does) raises."""

        def get(self, key: str, default: Any = None) -> Any:
            if key == "plan":
                raise RuntimeError("boom")
            return super().get(key, default)

    d = doc()
    d["flags"]["payments.v2"]["rules"] = [
        {"id": "p", "when": [{"attr": "plan", "op": "eq", "values": ["x"]}],
         "serve": {"variant": "on"}}
    ]  # fmt: skip
    d["flags"]["checkout.new-flow"]["rules"] = []
    res = evaluate(parse_ruleset(d), "checkout.new-flow", Exploding(targetingKey="u"))
    assert (res.reason, res.use_default) == (Reason.PREREQUISITE_FAILED, True)


def test_evaluate_all__every_flag__keyed_by_flag(rs: Any) -> None:
    out = evaluate_all(rs, {"targetingKey": "u-staff"})
    assert set(out) == {"checkout.new-flow", "payments.v2", "ui.theme"}
    assert out["ui.theme"].value == "dark"
    assert all(r.flag_key == k for k, r in out.items())


def test_ruleset__frozen__cannot_be_mutated(rs: Any) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        rs.version = 2
    with pytest.raises(TypeError):
        rs.flags["x"] = None
    with pytest.raises(TypeError):
        rs.flags["payments.v2"].variants["on"] = False


# ---------------------------------------------------------------------------------------------
# changed_flag_keys


def _changed(mutate: Any) -> frozenset[str]:
    old = parse_ruleset(doc())
    d = doc()
    mutate(d)
    return changed_flag_keys(old, parse_ruleset(d))


def test_changed__no_previous__all_flags() -> None:
    rs = parse_ruleset(doc())
    assert changed_flag_keys(None, rs) == frozenset(rs.flags)


def test_changed__only_version_differs__nothing() -> None:
    assert _changed(lambda d: d.__setitem__("version", 43)) == frozenset()


def test_changed__one_flag_edited__that_flag_and_its_dependants() -> None:
    def edit(d: dict[str, Any]) -> None:
        d["flags"]["payments.v2"]["fallthrough"] = {"variant": "off"}

    assert _changed(edit) == {"payments.v2", "checkout.new-flow"}


def test_changed__metadata_edited__that_flag() -> None:
    def edit(d: dict[str, Any]) -> None:
        d["flags"]["ui.theme"]["metadata"] = {"owner": "web"}

    assert _changed(edit) == {"ui.theme"}


def test_changed__segment_edited__flags_using_it() -> None:
    assert _changed(lambda d: d["segments"]["staff"]["include"].append("u2")) == {"ui.theme"}


def test_changed__flag_added_and_removed__both() -> None:
    def edit(d: dict[str, Any]) -> None:
        d["flags"]["new.flag"] = copy.deepcopy(d["flags"].pop("ui.theme"))

    assert _changed(edit) == {"ui.theme", "new.flag"}
