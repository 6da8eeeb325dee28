"""graph.py: the one home of rule-graph walks (issue 12), iterative at any depth."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openfeature_provider.engine import MAX_CHAIN_DEPTH, ParseError, evaluate, parse_ruleset
from openfeature_provider.engine.graph import (
    attributes_read,
    dependents,
    dependents_in_order,
    find_cycle,
    longest_chain,
    segment_refs,
    topological_order,
)
from openfeature_provider.engine.types import Condition


def _doc(flags: dict[str, Any], segments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"format": 1, "environment": "t", "version": 1, "flags": flags,
            "segments": segments or {}}  # fmt: skip


def _on(**extra: Any) -> dict[str, Any]:
    return {"kind": "boolean", "enabled": True, "variants": {"on": True, "off": False},
            "fallthrough": {"variant": "on"}, **extra}  # fmt: skip


def test_segment_refs__conditions_and_raw_mappings__same_keys() -> None:
    raw = [{"op": "in_segment", "values": ["a", "b"]}, {"op": "eq", "attr": "x", "values": ["c"]},
           {"op": "not_in_segment", "values": ["c"]}, "junk", {"op": 3}]  # fmt: skip
    parsed = [Condition("in_segment", None, ("a", "b")), Condition("eq", "x", ("c",)),
              Condition("not_in_segment", None, ("c",))]  # fmt: skip
    assert segment_refs(raw) == segment_refs(parsed) == {"a", "b", "c"}


def test_find_cycle__cycle_and_dag__found_or_none() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b", "c"], "b": ["c"], "c": [], "d": ["zz"]}) is None


def test_topological_order__long_chain__dependencies_first_no_recursion() -> None:
    n = 100_000
    graph = {f"k{i}": [f"k{i + 1}"] if i + 1 < n else [] for i in range(n)}
    order = topological_order(graph)
    assert order[0] == f"k{n - 1}" and order[-1] == "k0"
    assert longest_chain(graph)[0] == n


def test_dependents__transitive__reverse_closure() -> None:
    assert dependents({"c"}, {"a": ["b"], "b": ["c"], "x": ["y"]}) == {"a", "b", "c"}


def test_attributes_read__rules_segments_rollouts_prerequisites__all_listed() -> None:
    rs = parse_ruleset(
        _doc(
            {
                "base": _on(rules=[{"id": "r", "when": [{"attr": "country", "op": "exists"}],
                                    "serve": {"variant": "on"}}]),
                "f": _on(
                    prerequisites=[{"flag": "base", "variants": ["on"]}],
                    rules=[{"id": "r", "when": [{"attr": "plan", "op": "eq", "values": ["x"]},
                                                {"op": "in_segment", "values": ["s2"]}],
                            "serve": {"rollout": {"weights": [{"variant": "on", "weight": 1}],
                                                  "bucket_by": "company.id"}}}],
                ),
            },
            {"s1": {"include": ["u1"], "when": [{"attr": "email", "op": "exists"}]},
             "s2": {"when": [{"op": "in_segment", "values": ["s1"]}]}},
        )
    )  # fmt: skip
    f = rs.flags["f"]
    assert attributes_read(f, rs.segments) == {"plan", "company.id", "email", "targetingKey"}
    assert "country" in attributes_read(f, rs.segments, rs.flags)


def _prereq_chain(n: int) -> dict[str, Any]:
    return {
        f"f{i}": _on(
            **({"prerequisites": [{"flag": f"f{i - 1}", "variants": ["on"]}]} if i else {})
        )
        for i in range(n)
    }


def _segment_chain(n: int) -> dict[str, Any]:
    # declared deepest-last, so compiling in document order would need the later ones first
    return {
        f"s{i}": {"when": [{"op": "in_segment", "values": [f"s{i + 1}"]}]}
        if i + 1 < n
        else {"include": ["u1"]}
        for i in range(n)
    }


def test_parse__chains_at_bound__accepted_and_evaluated_to_the_end() -> None:
    rs = parse_ruleset(_doc(_prereq_chain(MAX_CHAIN_DEPTH)))
    assert evaluate(rs, f"f{MAX_CHAIN_DEPTH - 1}", {}).variant == "on"
    flags = {"g": _on(rules=[{"id": "r", "when": [{"op": "in_segment", "values": ["s0"]}],
                              "serve": {"variant": "off"}}])}  # fmt: skip
    rs = parse_ruleset(_doc(flags, _segment_chain(MAX_CHAIN_DEPTH)))
    assert evaluate(rs, "g", {"targetingKey": "u1"}).variant == "off"
    assert evaluate(rs, "g", {"targetingKey": "u2"}).variant == "on"


@pytest.mark.parametrize("n", [MAX_CHAIN_DEPTH + 1, 3_000])
def test_parse__chains_over_bound__parse_error_not_recursion(n: int) -> None:
    """Evaluation follows chains by nested calls: a 3,000-flag chain used to make every
    evaluation of its last flag fail with RecursionError (served as 'prerequisite not met')."""
    with pytest.raises(ParseError) as info:
        parse_ruleset(_doc(_prereq_chain(n)))
    assert info.value.path == f'$.flags["f{n - 1}"].prerequisites'
    with pytest.raises(ParseError) as info:
        parse_ruleset(_doc({}, _segment_chain(n)))
    assert info.value.path == '$.segments["s0"]'


def _bfs_by_scan(depends_on: dict[str, list[str]], start: str) -> list[str]:
    """The walk blast_radius.dependent_flags did before it used the graph module: for each
    key in order, scan every key (document order) that depends on it."""
    order, seen, i = [start], {start}, 0
    while i < len(order):
        current = order[i]
        i += 1
        for key, deps in depends_on.items():
            if key not in seen and current in deps:
                seen.add(key)
                order.append(key)
    return order


def test_dependents_in_order__chain_and_fan__breadth_first_in_document_order() -> None:
    depends_on = {"d": ["b"], "a": [], "c": ["a"], "b": ["a"], "e": ["d", "c"]}
    assert dependents_in_order(["a"], depends_on) == ["a", "c", "b", "e", "d"]
    assert dependents_in_order(["b"], depends_on) == ["b", "d", "e"]
    assert dependents_in_order(["zz"], depends_on) == ["zz"]


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from("abcdefgh"), st.lists(st.sampled_from("abcdefgh"), max_size=4), max_size=8
    ),
    st.sampled_from("abcdefgh"),
)
def test_dependents_in_order__random_graphs__same_order_as_a_scan_and_same_set_as_dependents(
    depends_on: dict[str, list[str]], start: str
) -> None:
    ordered = dependents_in_order([start], depends_on)
    assert ordered == _bfs_by_scan(depends_on, start)
    assert set(ordered) == dependents([start], depends_on)
