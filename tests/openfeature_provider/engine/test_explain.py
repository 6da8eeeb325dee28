"""engine.explain: the path it reports is the path the compiled evaluator took."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openfeature_provider.engine import evaluate, parse_ruleset
from openfeature_provider.engine.explain import Explainer, explain_row, to_json_line
from tests.conformance.cases import load_cases

CASES = list(load_cases())


def _decided_rule(why: dict[str, Any]) -> str | None:
    for rule in why.get("rules", []):
        if rule["matched"]:
            return str(rule["id"])
    return None


@pytest.mark.parametrize(("name", "doc", "case"), CASES, ids=[c[0] for c in CASES])
def test_explain__conformance_case__same_rule_and_variant_as_evaluate(
    name: str, doc: dict[str, Any], case: dict[str, Any]
) -> None:
    ruleset = parse_ruleset(doc)
    context = case.get("context") or {}
    res = evaluate(ruleset, case["flag"], context)
    row = explain_row(ruleset, case["flag"], context)
    why = row["why"]
    assert row["rule"] == res.rule_id
    assert row["reason"] == res.reason
    if res.rule_id is not None:
        assert why["decided"] == "rule"
        assert _decided_rule(why) == res.rule_id
    elif why.get("decided") == "rule":
        pytest.fail(f"explain says a rule decided, evaluate says none: {why}")
    if res.reason == "DISABLED":
        assert why["decided"] == "disabled"
    if res.reason == "PREREQUISITE_FAILED":
        assert why["decided"] == "prerequisite"
        assert not all(p["met"] for p in why["prerequisites"])
    if res.reason == "SPLIT":
        assert why["rollout"]["variant"] == res.variant
    json.dumps(row)  # plain JSON


RULESET: dict[str, Any] = {
    "format": 1,
    "environment": "test",
    "version": 3,
    "segments": {
        "beta": {"include": ["u-in"], "exclude": ["u-out"], "when": [
            {"attr": "email", "op": "ends_with", "values": ["@example.org"]}]},
        "staff": {"when": [{"op": "in_segment", "values": ["beta"]},
                           {"attr": "staff", "op": "eq", "values": [True]}]},
    },
    "flags": {
        "base": {"kind": "boolean", "enabled": True, "variants": {"on": True, "off": False},
                 "rules": [{"id": "pro", "when": [{"attr": "plan", "op": "in",
                                                   "values": ["pro", "team"]}],
                            "serve": {"variant": "on"}}],
                 "fallthrough": {"variant": "off"}},
        "child": {"kind": "string", "enabled": True, "variants": {"a": "A", "b": "B"},
                  "prerequisites": [{"flag": "base", "variants": ["on"]}],
                  "rules": [{"id": "seg", "when": [{"op": "in_segment", "values": ["staff"]}],
                             "serve": {"variant": "a"}},
                            {"id": "never", "when": [], "serve": {"variant": "b"}}],
                  "fallthrough": {"variant": "b"}},
        "split": {"kind": "boolean", "enabled": True, "variants": {"on": True, "off": False},
                  "fallthrough": {"rollout": {"weights": [{"variant": "on", "weight": 2500},
                                                          {"variant": "off", "weight": 7500}]}}},
        "off": {"kind": "boolean", "enabled": False, "variants": {"on": True}},
    },
}  # fmt: skip


def test_explain__segment_via_segment__reasons_and_values_shown() -> None:
    ruleset = parse_ruleset(RULESET)
    ctx = {"targetingKey": "u1", "plan": "pro", "email": "a@example.org", "staff": True}
    row = explain_row(ruleset, "child", ctx)
    why = row["why"]
    assert row["variant"] == "a" and row["rule"] == "seg"
    assert why["prerequisites"] == [
        {"flag": "base", "variants": ["on"], "got": "on", "reason": "TARGETING_MATCH",
         "met": True}
    ]  # fmt: skip
    assert why["segments"]["staff"]["by"] == "conditions"
    assert why["segments"]["beta"] == {
        "member": True,
        "by": "conditions",
        "conditions": [
            {"attr": "email", "op": "ends_with", "values": ["@example.org"],
             "actual": "a@example.org", "matched": True}
        ],
    }  # fmt: skip
    assert why["rules"][1] == {"id": "never", "matched": None}  # not tried


def test_explain__excluded_key__segment_says_exclude() -> None:
    ruleset = parse_ruleset(RULESET)
    ctx = {"targetingKey": "u-out", "plan": "pro", "email": "a@example.org", "staff": True}
    why = explain_row(ruleset, "child", ctx)["why"]
    assert why["segments"]["beta"] == {"member": False, "by": "exclude"}
    assert why["rules"][0]["matched"] is False
    assert why["decided"] == "rule" and why["rules"][1]["matched"] is True


def test_explain__prerequisite_not_met__decided_by_prerequisite_no_rules() -> None:
    ruleset = parse_ruleset(RULESET)
    why = explain_row(ruleset, "child", {"targetingKey": "u1", "plan": "free"})["why"]
    assert why["decided"] == "prerequisite"
    assert why["prerequisites"][0]["got"] == "off" and not why["prerequisites"][0]["met"]
    assert "rules" not in why


def test_explain__split__position_below_bound_of_served_variant() -> None:
    ruleset = parse_ruleset(RULESET)
    explainer = Explainer(ruleset)
    seen = set()
    for i in range(200):
        row = explain_row(ruleset, "split", {"targetingKey": f"k{i}"}, explainer=explainer)
        roll = row["why"]["rollout"]
        assert roll["variant"] == row["variant"]
        on = roll["position"] < 25.0
        assert (row["variant"] == "on") == on
        seen.add(row["variant"])
    assert seen == {"on", "off"}
    assert roll["split"] == [{"variant": "on", "upTo": 25.0}, {"variant": "off", "upTo": 100.0}]


def test_explain__missing_bucket_value__rollout_without_position() -> None:
    row = explain_row(parse_ruleset(RULESET), "split", {})
    assert row["errorCode"] == "TARGETING_KEY_MISSING"
    assert row["why"]["rollout"]["value"] is None and "position" not in row["why"]["rollout"]


def test_explain__disabled_and_unknown__decided_says_so() -> None:
    ruleset = parse_ruleset(RULESET)
    assert explain_row(ruleset, "off", {})["why"] == {"enabled": False, "decided": "disabled"}
    assert explain_row(ruleset, "nope", {})["why"] == {"decided": "not-found"}


def test_explain__long_and_nested_values__shown_bounded() -> None:
    ruleset = parse_ruleset(RULESET)
    row = explain_row(ruleset, "base", {"targetingKey": "u", "plan": "x" * 5000})
    actual = row["why"]["rules"][0]["conditions"][0]["actual"]
    assert len(actual) == 201 and actual.endswith("…")
    row = explain_row(ruleset, "base", {"plan": {"deep": [1, 2]}})
    assert row["why"]["rules"][0]["conditions"][0]["actual"] == {"type": "object"}


def test_to_json_line__lone_surrogate__ascii_escaped_not_raised() -> None:
    assert to_json_line({"a": "\ud800"}) == '{"a":"\\ud800"}'
    assert to_json_line({"a": "é"}) == '{"a":"é"}'


def test_to_json_line__unicode_line_separators__one_line_same_value() -> None:
    row = {"a": "x\u2028y\u2029z\x85w\n"}
    text = to_json_line(row)
    assert len(text.splitlines()) == 1
    assert json.loads(text) == row
