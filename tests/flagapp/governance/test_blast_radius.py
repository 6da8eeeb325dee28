"""Blast-radius comparison with the real engine (pure part: documents + contexts)."""

from __future__ import annotations

import copy
from typing import Any

from flagapp.governance.blast_radius import compare


def _doc(flags: dict[str, Any], segments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format": 1,
        "environment": "production",
        "version": 3,
        "etag": "sha256:x",
        "flags": flags,
        "segments": segments or {},
    }


def _bool_flag(**kw: Any) -> dict[str, Any]:
    flag: dict[str, Any] = {
        "kind": "boolean",
        "enabled": True,
        "variants": {"on": True, "off": False},
        "rules": [],
        "fallthrough": {"variant": "off"},
        "metadata": {},
    }
    flag.update(kw)
    return flag


CONTEXTS = [{"targetingKey": f"u{i}", "plan": "pro" if i % 4 == 0 else "free"} for i in range(100)]


def test_compare__rule_for_a_quarter__counts_exactly_that_quarter() -> None:
    before = _doc({"checkout.new-flow": _bool_flag()})
    after = copy.deepcopy(before)
    after["flags"]["checkout.new-flow"]["rules"] = [
        {
            "id": "pro",
            "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
            "serve": {"variant": "on"},
        }
    ]
    radius = compare(before, after, "checkout.new-flow", CONTEXTS, max_examples=3)
    assert (radius.sampled, radius.changed) == (100, 25)
    assert radius.share == 0.25
    assert len(radius.examples) == 3
    assert {e["before"] for e in radius.examples} == {"off"}
    assert {e["after"] for e in radius.examples} == {"on"}
    assert radius.transitions == {"off -> on": 25}
    assert radius.as_dict()["share"] == 0.25


def test_compare__no_effective_change__zero_changed() -> None:
    before = _doc({"checkout.new-flow": _bool_flag()})
    after = copy.deepcopy(before)
    after["flags"]["checkout.new-flow"]["rules"] = [
        {
            "id": "r",
            "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
            "serve": {"variant": "off"},
        }
    ]
    radius = compare(before, after, "checkout.new-flow", CONTEXTS)
    assert radius.changed == 0 and radius.examples == []


def test_compare__kill_switch__everyone_goes_to_default() -> None:
    before = _doc({"checkout.new-flow": _bool_flag(fallthrough={"variant": "on"})})
    after = copy.deepcopy(before)
    after["flags"]["checkout.new-flow"]["enabled"] = False
    radius = compare(before, after, "checkout.new-flow", CONTEXTS)
    assert radius.changed == 100
    assert radius.transitions == {"on -> (default)": 100}


def test_compare__rollout_percentage__monotonic_and_close_to_weight() -> None:
    def rollout(on: int) -> dict[str, Any]:
        return {
            "rollout": {
                "weights": [
                    {"variant": "on", "weight": on},
                    {"variant": "off", "weight": 10000 - on},
                ]
            }
        }

    contexts = [{"targetingKey": f"user-{i}"} for i in range(2000)]
    before = _doc({"checkout.new-flow": _bool_flag(fallthrough=rollout(1000))})
    after = _doc({"checkout.new-flow": _bool_flag(fallthrough=rollout(5000))})
    radius = compare(before, after, "checkout.new-flow", contexts)
    # 10% -> 50%: only off -> on transitions (monotonic bucketing), about 40% of users.
    assert set(radius.transitions) == {"off -> on"}
    assert 0.36 < radius.share < 0.44


def test_compare__prerequisite_dependants__counted_once_per_context() -> None:
    child = _bool_flag(
        fallthrough={"variant": "on"},
        prerequisites=[{"flag": "payments.v2", "variants": ["on"]}],
    )
    before = _doc(
        {"payments.v2": _bool_flag(fallthrough={"variant": "on"}), "checkout.new-flow": child}
    )
    after = copy.deepcopy(before)
    after["flags"]["payments.v2"]["fallthrough"] = {"variant": "off"}
    radius = compare(before, after, "payments.v2", CONTEXTS[:10])
    assert radius.flags == ["payments.v2", "checkout.new-flow"]
    assert radius.changed == 10  # each context once, although two flags changed for it


def test_compare__new_flag_without_snapshot__default_to_variant() -> None:
    after = _doc({"checkout.new-flow": _bool_flag(fallthrough={"variant": "on"})})
    radius = compare(None, after, "checkout.new-flow", CONTEXTS[:4])
    assert radius.changed == 4
    assert radius.transitions == {"(default) -> on": 4}


def test_compare__no_contexts__unknown_summary() -> None:
    doc = _doc({"checkout.new-flow": _bool_flag()})
    radius = compare(doc, doc, "checkout.new-flow", [])
    assert radius.sampled == 0 and radius.share == 0.0
    assert "unknown" in radius.summary()
