"""Compact compiled forms (issue 17 item 4): what a provider keeps per flag between swaps.

Each test pins one saving measured with tracemalloc at 10,000 flags (docs/scale.md): the
BuildState keeps a 16-byte digest per entry instead of its text, and conditions share one
empty frozenset instead of allocating 216 bytes per empty value set.
"""

from __future__ import annotations

import sys
from typing import Any

from openfeature_provider.engine import evaluate, parse_ruleset
from openfeature_provider.engine.operators import _scalar_sets


def _doc(n: int) -> dict[str, Any]:
    return {
        "format": 1,
        "environment": "prod",
        "version": 3,
        "flags": {
            f"flag-{i}": {
                "kind": "boolean",
                "enabled": True,
                "variants": {"on": True, "off": False},
                "rules": [
                    {
                        "id": "r1",
                        "when": [{"attr": "country", "op": "in", "values": ["fr", "de"]}],
                        "serve": {"variant": "on"},
                    }
                ],
                "fallthrough": {"variant": "off"},
                "metadata": {"owner": "team-" + "x" * 200},
            }
            for i in range(n)
        },
        "segments": {"beta": {"include": ["u1"], "exclude": [], "when": []}},
    }


def test_build_state__parsed_document__keeps_a_16_byte_digest_per_entry() -> None:
    ruleset = parse_ruleset(_doc(20))
    assert ruleset.build is not None
    kept = [*ruleset.build.flag_digests.values(), *ruleset.build.segment_digests.values()]
    assert len(kept) == 21
    assert all(isinstance(t, bytes) and len(t) == 16 for t in kept)
    # smaller than the entries' text it stands for (a 200-character metadata value here)
    assert all(sys.getsizeof(t) < 100 for t in kept)


def test_build_state__entry_edited_by_one_character__digest_differs() -> None:
    doc = _doc(2)
    before = parse_ruleset(doc)
    doc["flags"]["flag-1"]["metadata"]["owner"] = "team-y"
    after = parse_ruleset(doc, previous=before)
    assert before.build is not None and after.build is not None
    assert before.build.flag_digests["flag-0"] == after.build.flag_digests["flag-0"]
    assert before.build.flag_digests["flag-1"] != after.build.flag_digests["flag-1"]
    assert after.flags["flag-1"].metadata["owner"] == "team-y"


def test_build_state__one_and_one_point_zero_and_true__three_digests() -> None:
    docs = []
    for value in (1, 1.0, True):
        doc = _doc(1)
        doc["flags"]["flag-0"]["metadata"] = {"n": value}
        docs.append(parse_ruleset(doc))
    digests = {d.build.flag_digests["flag-0"] for d in docs if d.build is not None}
    assert len(digests) == 3


def test_scalar_sets__values_of_one_type__other_sets_are_one_shared_empty_set() -> None:
    strs, nums, bools = _scalar_sets(["fr", "de"], False)
    strs2, nums2, bools2 = _scalar_sets([1, 2], False)
    assert strs == {"fr", "de"} and nums2 == {1, 2}
    assert nums is bools is strs2 is bools2
    assert nums == frozenset()


def test_parse_ruleset__equal_pieces_in_many_flags__one_shared_copy() -> None:
    ruleset = parse_ruleset(_doc(3), keep_raw=False)
    a, b = ruleset.flags["flag-0"], ruleset.flags["flag-2"]
    assert a.variants is b.variants
    assert a.metadata is b.metadata
    assert a.fallthrough is b.fallthrough
    assert a.rules[0].when[0] is b.rules[0].when[0]
    assert ruleset.raw == {}  # keep_raw=False: no decoded document kept
    assert ruleset.build is not None
    # one compiled plan for the shared condition
    assert ruleset.build.conditions["flag-0"][0][0] is ruleset.build.conditions["flag-2"][0][0]


def test_parse_ruleset__one_true_and_one_point_zero__never_shared() -> None:
    # equal in Python, different in JSON: sharing must not turn one into another
    doc = _doc(0)
    for i, value in enumerate((1, True, 1.0)):
        doc["flags"][f"f{i}"] = {
            "kind": "boolean",
            "enabled": True,
            "variants": {"on": True, "off": False},
            "rules": [
                {"id": "r", "when": [{"attr": "n", "op": "eq", "values": [value]}],
                 "serve": {"variant": "on"}}
            ],
            "fallthrough": {"variant": "off"},
            "metadata": {"x": value},
        }  # fmt: skip
    ruleset = parse_ruleset(doc)
    got = [ruleset.flags[f"f{i}"].metadata["x"] for i in range(3)]
    assert [type(v) for v in got] == [int, bool, float]
    conds = [ruleset.flags[f"f{i}"].rules[0].when[0] for i in range(3)]
    assert [type(c.values[0]) for c in conds] == [int, bool, float]
    assert evaluate(ruleset, "f1", {"n": True}).variant == "on"
    assert evaluate(ruleset, "f0", {"n": True}).variant == "off"  # 1 is not true


def _strings(value: Any, out: set[int]) -> None:
    if isinstance(value, str) or (type(value) is int and abs(value) > 256):
        out.add(id(value))  # (small ints are the interpreter's own singletons)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.add(id(k))
            _strings(v, out)
    elif isinstance(value, list | tuple | frozenset):
        for v in value:
            _strings(v, out)


def test_parse_ruleset__without_raw__keeps_none_of_the_documents_strings() -> None:
    # A kept string that is the decoded document's own object pins the allocator's arena it
    # lives in: a few per arena kept the whole 25 MiB document of 10,000 flags resident.
    doc = _doc(3)
    doc["segments"]["beta"]["include"] = ["user-a"]
    doc["flags"]["flag-1"]["metadata"]["n"] = 1234567
    doc["flags"]["flag-1"]["rules"][0]["serve"] = {
        "rollout": {"weights": [{"variant": "on", "weight": 700},
                                {"variant": "off", "weight": 300}],
                    "bucket_by": "org.id", "salt": "s-1"}
    }  # fmt: skip
    in_doc: set[int] = set()
    _strings(doc, in_doc)
    ruleset = parse_ruleset(doc, keep_raw=False)
    kept: list[Any] = [ruleset.environment, ruleset.etag, *ruleset.segments]
    for key, flag in ruleset.flags.items():
        kept += [key, flag.key, flag.kind, *flag.variants, *flag.metadata, *flag.metadata.values()]
        for rule in flag.rules:
            kept += [rule.id, rule.serve.variant]
            for cond in rule.when:
                kept += [cond.op, cond.attr, *cond.values]
            if rule.serve.rollout is not None:
                r = rule.serve.rollout
                kept += [r.bucket_by, r.salt, r.hash, *(w.variant for w in r.weights)]
                kept += [w.weight for w in r.weights]
    for segment in ruleset.segments.values():
        kept += [segment.key, *segment.include, *segment.exclude]
    held = [v for v in kept if v is not None and id(v) in in_doc and v != ""]
    assert held == []
