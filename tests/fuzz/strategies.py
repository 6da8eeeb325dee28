"""Hypothesis strategies for the fuzz suite: hostile evaluation contexts and generated
rulesets that use every operator (not a test module).

A context is generated as a ``Recipe``: a Python mapping (lone surrogates, NaN/Infinity,
integers far outside 64 bits, long strings, nested containers, non-string keys) plus an
optional very deep value that is built iteratively where it is used (``materialize``): no
serializer (pickle, json) can carry 100,000 levels of nesting, and the engine must cope with
them all the same.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from openfeature_provider.engine.operators import OPERATORS

#: Attribute paths the generated rules read and the generated contexts fill.
ATTRS = ["targetingKey", "plan", "email", "age", "version", "ip", "signup", "tags", "n",
         "company.id", "company.plan"]  # fmt: skip
TOP_KEYS = ["targetingKey", "plan", "email", "age", "version", "ip", "signup", "tags", "n",
            "company", "company.id", "other"]  # fmt: skip

SURROGATES = ["\ud800", "\udfff", "a\udc80b", "\ud83d", "x\ud83d\ude00\ud800"]
HUGE_NUMBERS: list[Any] = [10**400, -(10**400), 2**63, -(2**63) - 1, 2**64, 1e308, -1e308,
                           5e-324, math.nan, math.inf, -math.inf, -0.0]  # fmt: skip
#: Strings the operators parse (so conditions are reached with plausible and broken input).
SHAPED = ["1.2.3", "1.0.0-rc.1", "01.2.3", "1" * 5000 + ".0.0", "1.0.0-" + "9" * 5000,
          "2024-06-01T00:00:00+00:00", "2024-06-01T00:00:00", "9999-12-31T23:59:59Z",
          "10.1.2.3", "::1", "300.1.1.1", "10.0.0.0/8", "a@example.com", "pro", "", " ",
          "\x00", "\n", "é", "ß", "İ", "ﬀ"]  # fmt: skip

_text = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(categories=["Cs", "Lu", "Ll", "Nd", "Zs", "Cc", "Mn"]), max_size=12),
    st.sampled_from(SURROGATES + SHAPED),
)
_long_text = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["a", "1", "é", "a.", "\ud800", "😀", "a@", " "]),
    st.integers(1_000, 60_000),
)
_number = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HUGE_NUMBERS),
)
_leaf = st.one_of(st.none(), st.booleans(), _number, _text, _long_text)
_odd_key = st.one_of(st.integers(-5, 5), st.none(), st.tuples(st.integers()), st.booleans(),
                     st.floats(allow_nan=True), st.sampled_from(SURROGATES))  # fmt: skip

_plain_text = st.text(max_size=12)  # no surrogates (hypothesis excludes them by default)


def json_values(keys: st.SearchStrategy[str] = _text) -> st.SearchStrategy[Any]:
    """Nested JSON-like values; ``keys`` draws the object keys below the top level."""
    key = st.one_of(st.sampled_from(["id", "plan", "x"]), keys)
    return st.recursive(
        _leaf,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(key, children, max_size=4)
        ),
        max_leaves=12,
    )


JSON_VALUE = json_values()
JSON_VALUE_PLAIN_KEYS = json_values(_plain_text)


@dataclass(frozen=True)
class Recipe:
    """One context: ``base`` plus, optionally, ``deep = (attr, depth, container)``."""

    base: dict[Any, Any]
    deep: tuple[str, int, str] | None = None

    def materialize(self) -> dict[Any, Any]:
        ctx = dict(self.base)
        if self.deep is not None:
            attr, depth, container = self.deep
            ctx[attr] = deep_value(depth, container)
        return ctx


def deep_value(depth: int, container: str) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value] if container == "list" else {"id": value, "plan": value}
    return value


def deep_json_text(depth: int, container: str) -> str:
    """The JSON text of ``deep_value(depth, container)`` without building it."""
    if container == "list":
        return "[" * depth + '"bottom"' + "]" * depth
    # {"id": X, "plan": X} doubles per level; keep one branch deep and the other a leaf
    return '{"id": ' * depth + '"bottom"' + ', "plan": 1}' * depth


@st.composite
def recipes(draw: st.DrawFn, *, json_only: bool = False, surrogate_keys: bool = True) -> Recipe:
    """A hostile context. ``json_only``: string keys only (what JSON can carry);
    ``surrogate_keys``: nested object keys may hold lone surrogates."""
    values = JSON_VALUE if surrogate_keys else JSON_VALUE_PLAIN_KEYS
    base: dict[Any, Any] = {}
    for key in draw(st.lists(st.sampled_from(TOP_KEYS), max_size=8, unique=True)):
        base[key] = draw(values)
    if not json_only:
        for key in draw(st.lists(_odd_key, max_size=2)):
            with contextlib.suppress(TypeError):  # an unhashable key: skip it
                base[key] = draw(JSON_VALUE)
    deep = None
    if draw(st.integers(0, 4)) == 0:
        deep = (
            draw(st.sampled_from(["company", "tags", "plan", "targetingKey", "n"])),
            draw(st.sampled_from([64, 65, 900, 5_000, 100_000])),
            draw(st.sampled_from(["list", "dict"])),
        )
    return Recipe(base, deep)


# --- rulesets --------------------------------------------------------------------------------

_PATTERNS = [r"^([a-z0-9]+\.?)+@example\.com$", r"^(a+)+$", r"(x+x+)+y", r"\d", r"^\w+$",
             r"(?i)PRO", r"é$", r"^$", r"[\s\S]{10,}", r"[^\w.]"]  # fmt: skip
_SEMVERS = ["1.0.0", "2.1.0-rc.1", "0.0.1+build"]
_DATES = ["2024-06-01T00:00:00+00:00", "2000-01-01T00:00:00Z"]
_NETS = ["10.0.0.0/8", "::1", "2001:db8::/32"]
_SCALARS = st.one_of(st.text(max_size=6), st.integers(-(2**63), 2**63 - 1), st.booleans(),
                     st.floats(allow_nan=False, allow_infinity=False))  # fmt: skip


def _values(draw: st.DrawFn, op: str, segments: list[str]) -> list[Any]:
    if op in ("exists", "not_exists"):
        return []
    if op in ("in_segment", "not_in_segment"):
        return draw(st.lists(st.sampled_from(segments), min_size=1, max_size=2))
    if op in ("starts_with", "ends_with"):
        return draw(st.lists(st.text(max_size=4), min_size=1, max_size=3))
    if op == "matches":
        return draw(st.lists(st.sampled_from(_PATTERNS), min_size=1, max_size=3))
    if op in ("lt", "lte", "gt", "gte"):
        return draw(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1),
                                       st.floats(allow_nan=False, allow_infinity=False)),
                             min_size=1, max_size=2))  # fmt: skip
    if op.startswith("semver_"):
        return draw(st.lists(st.sampled_from(_SEMVERS), min_size=1, max_size=2))
    if op in ("before", "after"):
        return draw(st.lists(st.sampled_from(_DATES), min_size=1, max_size=2))
    if op == "in_cidr":
        return draw(st.lists(st.sampled_from(_NETS), min_size=1, max_size=2))
    return draw(st.lists(_SCALARS, min_size=1, max_size=3))


@st.composite
def conditions(draw: st.DrawFn, segments: list[str], ops: list[str]) -> dict[str, Any]:
    op = draw(st.sampled_from(ops))
    cond: dict[str, Any] = {"op": op}
    if OPERATORS[op].uses_attr:
        cond["attr"] = draw(st.sampled_from(ATTRS))
    values = _values(draw, op, segments)
    if values:
        cond["values"] = values
    if draw(st.booleans()):
        cond["negate"] = True
    if draw(st.integers(0, 3)) == 0:
        cond["case_insensitive"] = True
    return cond


_VARIANT_VALUES = {
    "boolean": st.booleans(),
    "string": st.text(max_size=8),
    "integer": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "object": st.one_of(
        st.dictionaries(st.text(max_size=4), _SCALARS, max_size=3),
        st.builds(lambda d: deep_value(d, "list"), st.integers(1, 63)),
    ),
}


@st.composite
def serves(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"variant": draw(st.sampled_from(names))}
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    weights = [{"variant": n, "weight": draw(st.integers(0, 10_000))} for n in chosen]
    weights[0]["weight"] += 1  # sum > 0
    rollout: dict[str, Any] = {"weights": weights}
    if draw(st.booleans()):
        rollout["bucket_by"] = draw(st.sampled_from(["targetingKey", "company.id", "plan"]))
    if draw(st.booleans()):
        rollout["salt"] = draw(st.text(max_size=6))
    return {"rollout": rollout}


@st.composite
def rulesets(draw: st.DrawFn) -> dict[str, Any]:
    """A valid format-v1 document; across examples every operator appears (``ops`` cycles
    through the whole table in each document)."""
    segment_keys = ["seg.a", "seg.b"]
    attr_ops = [name for name, op in OPERATORS.items() if op.uses_attr]
    segments = {
        "seg.a": {"include": ["u1"], "when": [draw(conditions([], attr_ops))]},
        "seg.b": {"exclude": ["u2"],
                  "when": [draw(conditions(["seg.a"], [*attr_ops, "in_segment"]))]},
    }  # fmt: skip
    all_ops = list(OPERATORS)
    flags: dict[str, Any] = {}
    n_flags = draw(st.integers(1, 5))
    for i in range(n_flags):
        kind = draw(st.sampled_from(list(_VARIANT_VALUES)))
        names = [f"v{j}" for j in range(draw(st.integers(1, 3)))]
        flag: dict[str, Any] = {
            "kind": kind,
            "enabled": draw(st.integers(0, 9)) > 0,
            "variants": {n: draw(_VARIANT_VALUES[kind]) for n in names},
        }
        rules = []
        for r in range(draw(st.integers(0, 3))):
            when = [draw(conditions(segment_keys, all_ops)) for _ in range(draw(st.integers(0, 3)))]
            rules.append({"id": f"r{r}", "when": when, "serve": draw(serves(names))})
        # every operator at least once per document, on the first flag
        if i == 0:
            rules.extend(
                {"id": f"op.{op}", "when": [draw(conditions(segment_keys, [op]))],
                 "serve": {"variant": names[0]}}
                for op in all_ops
            )  # fmt: skip
        if rules:
            flag["rules"] = rules
        if draw(st.integers(0, 4)) > 0:
            flag["fallthrough"] = draw(serves(names))
        if i > 0 and draw(st.booleans()):
            pre = f"f{draw(st.integers(0, i - 1))}"
            flag["prerequisites"] = [{"flag": pre, "variants": ["v0"]}]
        flags[f"f{i}"] = flag
    return {"format": 1, "environment": "production", "version": 1, "flags": flags,
            "segments": segments}  # fmt: skip
