"""Incremental parse: ``parse_ruleset(doc, previous=...)`` is a full parse, only cheaper.

Why: providers and the Django cache rebuild their ruleset on every change; with 10,000 flags a
full parse costs about a second, so the engine reuses what did not change (issue 17). Reuse
must never change a result: every random edit sequence gives the same ruleset, the same
evaluations and the same errors as parsing each document from scratch.
"""

from __future__ import annotations

import copy
import gc
import weakref
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openfeature_provider.engine import ParseError, Ruleset, evaluate, parse_ruleset
from tests.conformance.cases import load_files

BOOL = {"on": True, "off": False}
CONTEXTS: list[dict[str, Any]] = [
    {},
    {"targetingKey": "u1", "plan": "pro", "email": "a@corp.example"},
    {"targetingKey": "inc-1", "plan": "free", "country": "US"},
    {"targetingKey": "u-x", "plan": "enterprise", "email": "b@other.example", "country": "FR"},
    {"targetingKey": "exc-0", "email": "c@corp.example"},
]


def base_doc() -> dict[str, Any]:
    segments = {
        "corp": {"include": ["inc-1"], "exclude": ["exc-0"],
                 "when": [{"attr": "email", "op": "ends_with", "values": ["@corp.example"]}]},
        "paid": {"when": [{"attr": "plan", "op": "in", "values": ["pro", "enterprise"]}]},
        "corp-paid": {"when": [{"op": "in_segment", "values": ["corp"]},
                               {"op": "in_segment", "values": ["paid"]}]},
        "us": {"when": [{"attr": "country", "op": "eq", "values": ["US"]}]},
    }  # fmt: skip
    flags: dict[str, Any] = {}
    for i in range(8):
        flag: dict[str, Any] = {
            "kind": "boolean",
            "enabled": True,
            "variants": dict(BOOL),
            "rules": [
                {
                    "id": "seg",
                    "when": [{"op": "in_segment", "values": [list(segments)[i % 4]]}],
                    "serve": {"variant": "on"},
                },
                {
                    "id": "plan",
                    "when": [{"attr": "plan", "op": "eq", "values": ["free"]}],
                    "serve": {
                        "rollout": {
                            "weights": [
                                {"variant": "on", "weight": 30},
                                {"variant": "off", "weight": 70},
                            ]
                        }
                    },
                },
            ],
            "fallthrough": {"variant": "off"},
            "metadata": {"owner": f"team-{i}", "version": i},
        }
        if i >= 2:
            flag["prerequisites"] = [{"flag": f"f{i - 2}", "variants": ["on", "off"]}]
        flags[f"f{i}"] = flag
    flags["s"] = {
        "kind": "string",
        "enabled": True,
        "variants": {"a": "A", "b": "B"},
        "fallthrough": {"rollout": {"weights": [{"variant": "a", "weight": 1},
                                                {"variant": "b", "weight": 1}]}},
    }  # fmt: skip
    return {
        "format": 1,
        "environment": "inc",
        "version": 1,
        "etag": "e1",
        "flags": flags,
        "segments": segments,
    }


FLAG_KEYS = [f"f{i}" for i in range(8)] + ["s", "new"]
SEGMENT_KEYS = ["corp", "paid", "corp-paid", "us", "extra"]


def _edit(doc: dict[str, Any], edit: tuple[str, int, int]) -> None:
    """Apply one edit in place (some make the document invalid, on purpose)."""
    what, a, b = edit
    flags, segments = doc["flags"], doc["segments"]
    fkey = FLAG_KEYS[a % len(FLAG_KEYS)]
    skey = SEGMENT_KEYS[b % len(SEGMENT_KEYS)]
    flag = flags.get(fkey)
    doc["version"] += 1
    doc["etag"] = f"e{doc['version']}"
    if what == "toggle" and flag is not None:
        flag["enabled"] = not flag["enabled"]
    elif what == "enabled-as-int" and flag is not None:
        flag["enabled"] = 1  # equal to True in Python, invalid in the format
    elif what == "variant-as-int" and flag is not None and flag["kind"] == "boolean":
        flag["variants"]["on"] = 1
    elif what == "fallthrough" and flag is not None:
        flag["fallthrough"] = {"variant": next(iter(flag["variants"]))}
    elif what == "rule-values" and flag is not None and flag.get("rules"):
        flag["rules"][-1]["when"][0]["values"] = [["free"], ["pro"], ["team"]][b % 3]
    elif what == "rule-segment" and flag is not None and flag.get("rules"):
        flag["rules"][0]["when"] = [{"op": "in_segment", "values": [skey]}]
    elif what == "metadata" and flag is not None:
        flag["metadata"] = {"owner": f"o{b}"}
    elif what == "remove-flag":
        flags.pop(fkey, None)
    elif what == "add-flag":
        flags[fkey] = {"kind": "boolean", "enabled": b % 2 == 0, "variants": dict(BOOL),
                       "rules": [{"id": "r", "when": [{"op": "in_segment", "values": [skey]}],
                                  "serve": {"variant": "on"}}],
                       "fallthrough": {"variant": "off"}}  # fmt: skip
    elif what == "segment-include":
        seg = segments.get(skey)
        if seg is not None:
            seg["include"] = [f"u{b}", "u1"][: 1 + b % 2]
    elif what == "segment-condition":
        seg = segments.get(skey)
        if seg is not None:
            seg["when"] = [{"attr": "plan", "op": "eq", "values": [["pro", "free"][b % 2]]}]
    elif what == "segment-ref":
        seg = segments.get(skey)
        if seg is not None:  # may form a cycle or name a missing segment: both errors
            seg["when"] = [{"op": "in_segment", "values": [SEGMENT_KEYS[a % 5]]}]
    elif what == "remove-segment":
        segments.pop(skey, None)
    elif what == "add-segment":
        segments[skey] = {"include": [f"u{a}"]}


EDITS = st.tuples(
    st.sampled_from(
        [
            "toggle", "enabled-as-int", "variant-as-int", "fallthrough", "rule-values",
            "rule-segment", "metadata", "remove-flag", "add-flag", "segment-include",
            "segment-condition", "segment-ref", "remove-segment", "add-segment",
        ]
    ),
    st.integers(0, 9),
    st.integers(0, 9),
)  # fmt: skip


def _outcome(doc: dict[str, Any], previous: Ruleset | None) -> Ruleset | tuple[str, str]:
    try:
        return parse_ruleset(doc, previous=previous)
    except ParseError as exc:
        return (exc.path, str(exc))


def _assert_same(inc: Ruleset, full: Ruleset) -> None:
    assert inc == full
    assert list(inc.flags) == list(full.flags)
    assert list(inc.segments) == list(full.segments)
    for key in full.flags:
        for ctx in CONTEXTS:
            assert evaluate(inc, key, ctx) == evaluate(full, key, ctx), (key, ctx)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EDITS, min_size=1, max_size=8))
def test_parse_ruleset__random_edit_sequence__incremental_equals_full(
    edits: list[tuple[str, int, int]],
) -> None:
    doc = base_doc()
    current = parse_ruleset(doc)
    for edit in edits:
        doc = copy.deepcopy(doc)
        _edit(doc, edit)
        full = _outcome(doc, None)
        inc = _outcome(doc, current)
        if isinstance(full, tuple):
            assert inc == full
            continue
        assert isinstance(inc, Ruleset)
        _assert_same(inc, full)
        current = inc


@settings(max_examples=40, deadline=None)
@given(st.lists(EDITS, min_size=1, max_size=6))
def test_parse_ruleset__document_mutated_in_place__incremental_equals_full(
    edits: list[tuple[str, int, int]],
) -> None:
    # The caller edits the very objects it handed over last time (InMemorySource.update with
    # the same dict): what the previous parse saw must not be confused with what is there now.
    doc = base_doc()
    current = parse_ruleset(doc)
    for edit in edits:
        _edit(doc, edit)
        full = _outcome(copy.deepcopy(doc), None)
        inc = _outcome(doc, current)
        if isinstance(full, tuple):
            assert inc == full
            continue
        assert isinstance(inc, Ruleset)
        _assert_same(inc, full)
        current = inc


def test_parse_ruleset__one_flag_changed__the_others_reused_not_revalidated() -> None:
    doc = base_doc()
    first = parse_ruleset(doc)
    doc = copy.deepcopy(doc)
    doc["flags"]["f3"]["enabled"] = False
    doc["version"] = 2
    second = parse_ruleset(doc, previous=first)
    assert evaluate(second, "f3", CONTEXTS[1]).reason == "DISABLED"
    # validated pieces of unchanged flags are the previous objects (structural sharing)
    assert second.flags["f0"].rules is first.flags["f0"].rules
    assert second.flags["s"].variants is first.flags["s"].variants
    assert second.flags["f3"].rules is not first.flags["f3"].rules
    assert second.segments["corp"] is first.segments["corp"]
    assert second.build is not None and first.build is not None
    assert second.build.conditions["f0"] is first.build.conditions["f0"]
    # ... but every resolution carries the new snapshot version
    assert evaluate(second, "f0", CONTEXTS[1]).metadata["snapshotVersion"] == 2
    assert evaluate(first, "f0", CONTEXTS[1]).metadata["snapshotVersion"] == 1


def test_parse_ruleset__segment_changed__flags_naming_it_recompiled() -> None:
    doc = base_doc()
    first = parse_ruleset(doc)
    doc = copy.deepcopy(doc)
    doc["segments"]["paid"]["when"][0]["values"] = ["free"]
    second = parse_ruleset(doc, previous=first)
    assert second.build is not None and first.build is not None
    # f2 names "corp-paid" (which names "paid"): recompiled; f0 names "corp": reused
    assert second.build.conditions["f2"] is not first.build.conditions["f2"]
    assert second.build.conditions["f0"] is first.build.conditions["f0"]
    free_corp = {"targetingKey": "z", "plan": "free", "email": "z@corp.example"}
    assert evaluate(second, "f2", free_corp).rule_id == "seg"
    assert evaluate(first, "f2", free_corp).rule_id != "seg"


@pytest.mark.parametrize(("name", "doc"), list(load_files()), ids=[n for n, _ in load_files()])
def test_parse_ruleset__conformance_after_another_version__same_answers(
    name: str, doc: dict[str, Any]
) -> None:
    # previous: the same document one version earlier with every flag toggled
    earlier = copy.deepcopy(doc["ruleset"])
    earlier["version"] = doc["ruleset"]["version"] - 1
    for flag in earlier["flags"].values():
        flag["enabled"] = not flag["enabled"]
    ruleset = parse_ruleset(doc["ruleset"], previous=parse_ruleset(earlier))
    ruleset = parse_ruleset(doc["ruleset"], previous=ruleset)  # and from itself
    full = parse_ruleset(doc["ruleset"])
    assert ruleset == full
    for case in doc["cases"]:
        got = evaluate(ruleset, case["flag"], case["context"], case.get("kind"))
        assert got == evaluate(full, case["flag"], case["context"], case.get("kind")), case


def test_parse_ruleset__incremental__replaced_flags_freed_by_refcounting_shared_kept() -> None:
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        doc = base_doc()
        first = parse_ruleset(doc)
        doc = copy.deepcopy(doc)
        doc["flags"]["f3"]["enabled"] = False
        second = parse_ruleset(doc, previous=first)
        # what the new ruleset does not share (f3, and f5, f7 holding it as a prerequisite)
        # goes with the old one; what it shares is the very same object
        replaced = [f for k, f in first.flags.items() if second.flags[k] is not f]
        assert sorted(f.key for f in replaced) == ["f3", "f5", "f7"]
        refs = [weakref.ref(first)]
        refs += [weakref.ref(f.compiled) for f in replaced if f.compiled]
        del first, replaced
        assert [r for r in refs if r() is not None] == []
        assert evaluate(second, "f0", CONTEXTS[1]).value is True
    finally:
        if was:
            gc.enable()
