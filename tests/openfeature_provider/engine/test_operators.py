"""Every operator, table-driven, including wrong attribute types (condition semantics)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from openfeature_provider.engine.compiler import compile_condition
from openfeature_provider.engine.operators import OPERATORS, parse_semver
from openfeature_provider.engine.types import Condition

MISSING = object()

# (op, values, options, attribute value, expected) -- attribute "a"
ROWS: list[tuple[str, list[Any], dict[str, Any], Any, bool]] = [
    # eq / neq / in / not_in
    ("eq", ["x"], {}, "x", True),
    ("eq", ["x"], {}, "X", False),
    ("eq", ["x"], {"case_insensitive": True}, "X", True),
    ("eq", ["x", "y"], {}, "y", True),
    ("eq", [1], {}, 1.0, True),
    ("eq", [1.0], {}, 1, True),
    ("eq", [1], {}, True, False),
    ("eq", [True], {}, 1, False),
    ("eq", [True], {}, True, True),
    ("eq", [False], {}, 0, False),
    ("eq", ["1"], {}, 1, False),
    ("eq", [1], {}, "1", False),
    ("eq", ["x"], {}, ["x"], False),
    ("eq", ["x"], {}, {"x": 1}, False),
    ("eq", ["x"], {}, MISSING, False),
    ("eq", ["x"], {}, None, False),
    ("eq", ["x"], {"negate": True}, "y", True),
    ("eq", ["x"], {"negate": True}, "x", False),
    ("eq", ["x"], {"negate": True}, MISSING, False),
    ("eq", ["x"], {"negate": True}, 5, False),
    ("neq", ["x"], {}, "y", True),
    ("neq", ["x", "y"], {}, "y", False),
    ("neq", ["x"], {}, "x", False),
    ("neq", ["x"], {}, MISSING, False),
    ("neq", ["x"], {}, 3, False),
    ("neq", ["x"], {"negate": True}, "x", True),
    ("neq", ["x"], {"case_insensitive": True}, "X", False),
    ("in", ["a", "b", 3], {}, 3, True),
    ("in", ["a", "b", 3], {}, "c", False),
    ("in", ["a"], {}, ["a"], False),
    ("not_in", ["a", "b"], {}, "c", True),
    ("not_in", ["a", "b"], {}, "a", False),
    ("not_in", ["a", "b"], {}, MISSING, False),
    ("not_in", ["a", "b"], {}, 1, False),
    # contains / not_contains
    ("contains", ["b"], {}, "abc", True),
    ("contains", ["B"], {}, "abc", False),
    ("contains", ["B"], {"case_insensitive": True}, "abc", True),
    ("contains", ["b"], {}, ["a", "b"], True),
    ("contains", ["b"], {}, ["abc"], False),
    ("contains", [2], {}, [1, 2.0], True),
    ("contains", [1], {}, [True], False),
    ("contains", ["B"], {"case_insensitive": True}, ["b"], True),
    ("contains", [1], {}, "a1", False),  # no string values: unusable on a string
    ("contains", ["x"], {}, 5, False),
    ("contains", ["x"], {}, {"x": 1}, False),
    ("not_contains", ["x"], {}, ["a"], True),
    ("not_contains", ["x"], {}, "axe", False),
    ("not_contains", ["x"], {}, MISSING, False),
    ("not_contains", ["x"], {}, 7, False),
    # starts_with / ends_with / matches
    ("starts_with", ["ab", "x"], {}, "abc", True),
    ("starts_with", ["AB"], {"case_insensitive": True}, "abc", True),
    ("starts_with", ["ab"], {}, "cab", False),
    ("starts_with", ["1"], {}, 12, False),
    ("starts_with", ["ab"], {"negate": True}, 12, False),
    ("ends_with", ["bc"], {}, "abc", True),
    ("ends_with", ["bc"], {}, "bca", False),
    ("ends_with", ["bc"], {}, ["abc"], False),
    ("matches", ["b+c"], {}, "abbbcd", True),
    ("matches", ["^b"], {}, "abc", False),
    ("matches", ["^A"], {"case_insensitive": True}, "abc", True),
    ("matches", ["x", "^a"], {}, "abc", True),
    ("matches", ["1"], {}, 1, False),
    # numeric
    ("lt", [10], {}, 9.5, True),
    ("lt", [10], {}, 10, False),
    ("lt", [10, 20], {}, 15, True),
    ("lt", [10], {}, "5", False),
    ("lt", [10], {}, True, False),
    ("lt", [10], {"negate": True}, "5", False),
    ("lte", [10], {}, 10.0, True),
    ("lte", [10], {}, 10.5, False),
    ("gt", [10], {}, 11, True),
    ("gt", [10], {}, 10, False),
    ("gt", [10, 1], {}, 5, True),
    ("gt", [0], {}, False, False),
    ("gte", [10], {}, 10, True),
    ("gte", [10], {}, 9.99, False),
    ("gte", [10], {}, [10], False),
    # semver
    ("semver_eq", ["1.0.0"], {}, "1.0.0+meta", True),
    ("semver_eq", ["1.0.0"], {}, "1.0.0-rc.1", False),
    ("semver_lt", ["1.0.0"], {}, "1.0.0-alpha", True),
    ("semver_lt", ["1.0.0-alpha.1"], {}, "1.0.0-alpha", True),
    ("semver_lt", ["1.0.0-alpha.beta"], {}, "1.0.0-alpha.1", True),
    ("semver_lt", ["1.0.0-beta.11"], {}, "1.0.0-beta.2", True),
    ("semver_lt", ["1.0.0-rc.1"], {}, "1.0.0-beta.11", True),
    ("semver_lt", ["1.10.0"], {}, "1.9.0", True),
    ("semver_lt", ["1.0.0"], {}, "1.0", False),
    ("semver_lt", ["1.0.0"], {}, "v0.1.0", False),
    ("semver_lt", ["1.0.0"], {"negate": True}, "junk", False),
    ("semver_lte", ["1.0.0"], {}, "1.0.0+b", True),
    ("semver_gt", ["1.0.0-rc.1"], {}, "1.0.0", True),
    ("semver_gt", ["1.0.0"], {}, "1.0.0", False),
    ("semver_gte", ["2.0.0"], {}, "2.0.0", True),
    ("semver_gte", ["2.0.0"], {}, 2, False),
    # longer than MAX_SEMVER_LENGTH: unusable (int() refuses > 4300 digits; issue 11)
    ("semver_gt", ["1.0.0"], {}, "1" * 5000 + ".0.0", False),
    ("semver_gt", ["1.0.0"], {"negate": True}, "1.0.0-" + "1" * 5000, False),
    ("semver_lt", ["1.0.0"], {}, "0.0.0-" + "a" * 300, False),
    # dates
    ("before", ["2024-06-01T00:00:00+00:00"], {}, "2024-05-31T23:00:00Z", True),
    ("before", ["2024-06-01T00:00:00+00:00"], {}, "2024-06-01T01:00:00+02:00", True),
    ("before", ["2024-06-01T00:00:00+00:00"], {}, "2024-06-01T00:00:00Z", False),
    ("before", ["2024-06-01T00:00:00+00:00"], {}, "2024-05-01T00:00:00", False),
    ("before", ["2024-06-01T00:00:00+00:00"], {"negate": True}, "2024-05-01", False),
    ("before", ["2024-06-01T00:00:00+00:00"], {}, datetime(2024, 1, 1, tzinfo=UTC), True),
    ("before", ["2024-06-01T00:00:00+00:00"], {}, datetime(2024, 1, 1), False),
    ("after", ["2024-06-01T00:00:00Z"], {}, "2024-06-01T00:00:01Z", True),
    (
        "after",
        ["2024-06-01T00:00:00Z"],
        {},
        datetime(2024, 6, 1, 1, tzinfo=timezone(timedelta(hours=2))),
        False,
    ),
    ("after", ["2024-06-01T00:00:00Z"], {}, 1717200000, False),
    # networks
    ("in_cidr", ["10.0.0.0/8"], {}, "10.255.0.1", True),
    ("in_cidr", ["10.0.0.0/8"], {}, "11.0.0.1", False),
    ("in_cidr", ["10.0.0.1"], {}, "10.0.0.1", True),
    ("in_cidr", ["10.0.0.1"], {}, "10.0.0.2", False),
    ("in_cidr", ["::1"], {}, "::1", True),
    ("in_cidr", ["10.0.0.0/8"], {}, "::ffff:0a00:0001", False),
    ("in_cidr", ["10.0.0.0/8"], {}, "10.0.0", False),
    ("in_cidr", ["10.0.0.0/8"], {"negate": True}, "garbage", False),
    ("in_cidr", ["10.0.0.0/8"], {"negate": True}, "8.8.8.8", True),
    ("in_cidr", ["10.0.0.0/8"], {"negate": True}, "1:" * 30_000, False),  # over the bound
    # presence
    ("exists", [], {}, "", True),
    ("exists", [], {}, 0, True),
    ("exists", [], {}, MISSING, False),
    ("exists", [], {}, None, False),
    ("exists", [], {"negate": True}, MISSING, True),
    ("not_exists", [], {}, MISSING, True),
    ("not_exists", [], {}, None, True),
    ("not_exists", [], {}, False, False),
]


def _condition(op: str, values: list[Any], opts: dict[str, Any]) -> Condition:
    return Condition(op=op, attr="a", values=tuple(values), **opts)


@pytest.mark.parametrize(
    ("op", "values", "opts", "attr_value", "expected"),
    ROWS,
    ids=[f"{r[0]}-{i}" for i, r in enumerate(ROWS)],
)
def test_operator__attribute_value__expected_result(
    op: str, values: list[Any], opts: dict[str, Any], attr_value: Any, expected: bool
) -> None:
    pred = compile_condition(_condition(op, values, opts), {})
    ctx = {} if attr_value is MISSING else {"a": attr_value}
    assert pred(ctx) is expected


def test_operator_table__every_attribute_operator__has_a_row() -> None:
    covered = {r[0] for r in ROWS}
    attribute_ops = {name for name, op in OPERATORS.items() if op.uses_attr}
    assert attribute_ops == covered


def test_operator__dotted_attribute__reads_nested_and_literal_key_wins() -> None:
    pred = compile_condition(Condition(op="eq", attr="company.plan", values=("pro",)), {})
    assert pred({"company": {"plan": "pro"}}) is True
    assert pred({"company": {"plan": "free"}}) is False
    assert pred({"company": None}) is False
    assert pred({"company": ["pro"]}) is False
    assert pred({"company.plan": "pro", "company": {"plan": "free"}}) is True


def test_operator__unusable_type__logged_once_per_type(caplog: pytest.LogCaptureFixture) -> None:
    pred = compile_condition(Condition(op="lt", attr="age", values=(5,)), {}, "flag 'f'")
    with caplog.at_level(logging.WARNING, logger="flagapp.engine"):
        for _ in range(3):
            assert pred({"age": "4"}) is False
        assert pred({"age": [4]}) is False
    warnings = [r for r in caplog.records if r.name == "flagapp.engine"]
    assert len(warnings) == 2
    assert "unusable type str" in warnings[0].getMessage()
    assert "flag 'f'" in warnings[0].getMessage()


def test_operator__missing_attribute__not_logged(caplog: pytest.LogCaptureFixture) -> None:
    pred = compile_condition(Condition(op="eq", attr="plan", values=("x",)), {})
    with caplog.at_level(logging.DEBUG, logger="flagapp.engine"):
        assert pred({}) is False
    assert caplog.records == []


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-alpha.beta", "1.0.0-beta"),
        ("1.0.0-beta", "1.0.0-beta.2"),
        ("1.0.0-beta.2", "1.0.0-beta.11"),
        ("1.0.0-beta.11", "1.0.0-rc.1"),
        ("1.0.0-rc.1", "1.0.0"),
        ("1.0.0", "2.0.0"),
        ("2.0.0", "2.1.0"),
        ("2.1.0", "2.1.1"),
    ],
)
def test_semver__spec_precedence_example__strictly_ordered(lower: str, higher: str) -> None:
    lo, hi = parse_semver(lower), parse_semver(higher)
    assert lo is not None and hi is not None
    assert lo < hi


@pytest.mark.parametrize(
    "text",
    ["1", "1.2", "01.0.0", "1.0.0-01", "1.0.0-", "v1.0.0", "1.0.0+", "1" * 5000 + ".0.0"],
)
def test_semver__not_strict__rejected(text: str) -> None:
    assert parse_semver(text) is None
