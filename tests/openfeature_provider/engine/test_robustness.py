"""Properties over arbitrary input: parsing raises only ParseError, evaluation never raises."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from openfeature_provider.engine import ParseError, Resolution, evaluate, parse_ruleset
from tests.conformance.cases import load_files
from tests.openfeature_provider.engine.test_parse_errors import base

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


RULESETS = [doc["ruleset"] for _, doc in load_files()] + [base()]
ALL_PATHS = [(i, p) for i, doc in enumerate(RULESETS) for p in _paths(doc) if p]


@settings(max_examples=200, deadline=None)
@given(where=st.sampled_from(ALL_PATHS), replacement=JSON)
def test_parse__any_node_replaced_by_any_json__ruleset_or_parse_error(
    where: tuple[int, tuple[Any, ...]], replacement: Any
) -> None:
    index, path = where
    doc = copy.deepcopy(RULESETS[index])
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = replacement
    try:
        parse_ruleset(doc)
    except ParseError as exc:
        assert exc.path.startswith("$")


PARSED = [parse_ruleset(doc) for doc in RULESETS]
FLAG_REFS = [(i, key) for i, rs in enumerate(PARSED) for key in rs.flags]
CONTEXT = st.dictionaries(
    st.sampled_from(
        ["targetingKey", "plan", "country", "email", "tags", "age", "app", "ip", "signup",
         "company", "a", "n", "b", "v", "name", "org", "beta", "big", "half", "list"]
    ),
    JSON,
    max_size=6,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    ref=st.sampled_from(FLAG_REFS),
    context=CONTEXT,
    kind=st.sampled_from([None, "boolean", "string", "integer", "float", "object"]),
)
def test_evaluate__any_context__returns_resolution_never_raises(
    ref: tuple[int, str], context: dict[str, Any], kind: str | None
) -> None:
    index, key = ref
    res = evaluate(PARSED[index], key, context, kind)
    assert isinstance(res, Resolution)
    assert res.error_code != "GENERAL", res.error_message
    if not res.use_default:
        assert res.variant in PARSED[index].flags[key].variants
