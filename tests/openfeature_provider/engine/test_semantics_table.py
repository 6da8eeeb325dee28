"""One test per rule of docs/ruleset-format.md (sections "Evaluation", "Condition semantics")."""

from __future__ import annotations

from typing import Any

import pytest

from openfeature_provider.engine import evaluate, parse_ruleset

BOOL = {"on": True, "off": False}
ROLL = {"rollout": {"weights": [{"variant": "on", "weight": 1}, {"variant": "off", "weight": 0}]}}
PRO = {"id": "pro", "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}]}

RULESET = parse_ruleset(
    {
        "format": 1,
        "environment": "t",
        "version": 9,
        "flags": {
            "off": {"kind": "boolean", "enabled": False, "variants": BOOL},
            "needs-off": {"kind": "boolean", "enabled": True, "variants": BOOL,
                          "prerequisites": [{"flag": "off", "variants": ["on"]}],
                          "fallthrough": {"variant": "on"}},
            "ruled": {"kind": "boolean", "enabled": True, "variants": BOOL,
                      "rules": [{**PRO, "serve": {"variant": "on"}}],
                      "fallthrough": {"variant": "off"}},
            "rule-split": {"kind": "boolean", "enabled": True, "variants": BOOL,
                           "rules": [{**PRO, "serve": ROLL}], "fallthrough": None},
            "fall-split": {"kind": "boolean", "enabled": True, "variants": BOOL,
                           "fallthrough": ROLL},
            "static": {"kind": "string", "enabled": True, "variants": {"a": "A"},
                       "fallthrough": {"variant": "a"}},
            "null-fall": {"kind": "boolean", "enabled": True, "variants": BOOL,
                          "rules": [{**PRO, "serve": {"variant": "on"}}]},
            "num": {"kind": "integer", "enabled": True, "variants": {"n": 0},
                    "rules": [{"id": "age", "when": [{"attr": "age", "op": "gt", "values": [1]}],
                               "serve": {"variant": "n"}}]},
        },
    }
)  # fmt: skip

# (situation, flag, kind, context, use_default, value, variant, reason, error_code, rule_id)
ROWS: list[tuple[str, str, str | None, dict[str, Any], bool, Any, Any, str, Any, Any]] = [
    ("flag key unknown", "nope", "boolean", {}, True, None, None, "ERROR", "FLAG_NOT_FOUND", None),
    ("flag disabled", "off", "boolean", {}, True, None, None, "DISABLED", None, None),
    ("prerequisite not met", "needs-off", "boolean", {}, True, None, None,
     "PREREQUISITE_FAILED", None, None),
    ("rule matched, fixed variant", "ruled", "boolean", {"plan": "pro"}, False, True, "on",
     "TARGETING_MATCH", None, "pro"),
    ("rollout decided by a rule", "rule-split", "boolean", {"plan": "pro", "targetingKey": "u"},
     False, True, "on", "SPLIT", None, "pro"),
    ("rollout decided by the fallthrough", "fall-split", "boolean", {"targetingKey": "u"},
     False, True, "on", "SPLIT", None, None),
    ("no rules, fixed fallthrough", "static", "string", {}, False, "A", "a", "STATIC", None, None),
    ("rules exist, none matched, fixed fallthrough", "ruled", "boolean", {"plan": "x"}, False,
     False, "off", "DEFAULT", None, None),
    ("none matched, fallthrough null", "null-fall", "boolean", {}, True, None, None, "DEFAULT",
     None, None),
    ("requested type differs (before DISABLED)", "off", "string", {}, True, None, None, "ERROR",
     "TYPE_MISMATCH", None),
    ("rollout without the bucket key", "fall-split", "boolean", {}, True, None, None, "ERROR",
     "TARGETING_KEY_MISSING", None),
    ("attribute of an unusable type: the rule does not match", "num", "integer", {"age": "5"},
     True, None, None, "DEFAULT", None, None),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_semantics__design_table_row__resolution(row: tuple[Any, ...]) -> None:
    _, flag, kind, ctx, use_default, value, variant, reason, code, rule_id = row
    res = evaluate(RULESET, flag, ctx, kind)
    assert (res.use_default, res.variant, res.reason, res.error_code, res.rule_id) == (
        use_default,
        variant,
        reason,
        code,
        rule_id,
    )
    if not use_default:
        assert res.value == value and type(res.value) is type(value)
    if flag != "nope":
        assert res.metadata["snapshotVersion"] == 9
