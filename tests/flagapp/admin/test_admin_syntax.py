"""The admin's text syntaxes (flagapp.admin.syntax): parse/format round trips and errors."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from flagapp.admin.syntax import (
    format_conditions,
    format_prerequisites,
    format_rules,
    format_serve,
    format_value,
    parse_conditions,
    parse_keys,
    parse_prerequisites,
    parse_rules,
    parse_serve,
    parse_value,
)

ATTR = st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8})?", fullmatch=True)
SCALAR = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.integers(-(10**6), 10**6),
    st.booleans(),
)
ATTR_OPS = st.sampled_from(["eq", "neq", "in", "not_in", "contains", "starts_with", "lt"])


@st.composite
def conditions(draw: Any) -> dict[str, Any]:
    if draw(st.booleans()):
        cond: dict[str, Any] = {
            "op": draw(st.sampled_from(["in_segment", "not_in_segment"])),
            "values": draw(
                st.lists(
                    st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), min_size=1, max_size=3
                )
            ),
        }
    else:
        cond = {
            "attr": draw(ATTR),
            "op": draw(ATTR_OPS),
            "values": draw(st.lists(SCALAR, min_size=1, max_size=3)),
        }
        if draw(st.booleans()):
            cond["case_insensitive"] = True
    if draw(st.booleans()):
        cond["negate"] = True
    return cond


@settings(max_examples=150, deadline=None)
@given(st.lists(conditions(), max_size=4))
def test_conditions__format_then_parse__round_trips(conds: list[dict[str, Any]]) -> None:
    assert parse_conditions(format_conditions(conds)) == conds


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True),
            st.lists(conditions(), max_size=3),
        ),
        max_size=3,
        unique_by=lambda r: r[0],
    )
)
def test_rules__format_then_parse__round_trips(rows: list[tuple[str, Any]]) -> None:
    serve = {
        "rollout": {
            "weights": [{"variant": "on", "weight": 1}, {"variant": "off", "weight": 3}],
            "bucket_by": "org.id",
        }
    }
    rules = [(rule_id, conds, serve) for rule_id, conds in rows]
    parsed = parse_rules(format_rules(rules))
    assert [(r["id"], r["when"], r["serve"]) for r in parsed] == rules


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("on", {"variant": "on"}),
        (
            "on:10 off:90",
            {
                "rollout": {
                    "weights": [{"variant": "on", "weight": 10}, {"variant": "off", "weight": 90}]
                }
            },
        ),
        (
            "a:1, b:2 by=company.id salt=s1",
            {
                "rollout": {
                    "weights": [{"variant": "a", "weight": 1}, {"variant": "b", "weight": 2}],
                    "bucket_by": "company.id",
                    "salt": "s1",
                }
            },
        ),
    ],
)
def test_serve__valid_text__parsed_and_formatted_back(text: str, expected: Any) -> None:
    assert parse_serve(text, allow_empty=False) == expected
    assert parse_serve(format_serve(expected), allow_empty=False) == expected


@pytest.mark.parametrize("text", ["on off", "on:x", "on:10 off", "by=x", "on:1 color=red", ""])
def test_serve__bad_text__validation_error(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_serve(text, allow_empty=False)


def test_serve__empty_fallthrough__none() -> None:
    assert parse_serve("  ", allow_empty=True) is None
    assert format_serve(None) == ""


def test_conditions__attribute_the_syntax_cannot_carry__written_as_json() -> None:
    conds = [
        {"attr": "first name", "op": "eq", "values": ["x"]},
        {"attr": "not", "op": "exists"},
        {"attr": "in_segment", "op": "exists"},
    ]
    text = format_conditions(conds)
    assert all(line.startswith("{") for line in text.splitlines())
    assert parse_conditions(text) == conds


def test_conditions__quotes_numbers_json_lines__typed_values() -> None:
    text = (
        'zip eq "02134", 2134\nflag eq true\n'
        '{"attr": "x", "op": "exists"}\nname in "a, b", c\nage exists'
    )
    assert parse_conditions(text) == [
        {"attr": "zip", "op": "eq", "values": ["02134", 2134]},
        {"attr": "flag", "op": "eq", "values": [True]},
        {"attr": "x", "op": "exists"},
        {"attr": "name", "op": "in", "values": ["a, b", "c"]},
        {"attr": "age", "op": "exists"},
    ]


@pytest.mark.parametrize("text", ["plan like pro", "plan", 'plan eq "open', "{not json"])
def test_conditions__bad_line__validation_error_names_line(text: str) -> None:
    with pytest.raises(ValidationError, match=r"line 1|quote"):
        parse_conditions(text)


def test_prerequisites_and_keys__text__parsed_and_formatted() -> None:
    prereqs = parse_prerequisites("payments.v2: on, beta\n\nauth.sso: enabled")
    assert prereqs == [
        {"flag": "payments.v2", "variants": ["on", "beta"]},
        {"flag": "auth.sso", "variants": ["enabled"]},
    ]
    assert parse_prerequisites(format_prerequisites(prereqs)) == prereqs
    with pytest.raises(ValidationError):
        parse_prerequisites("payments.v2")
    assert parse_keys("u1\nu2, u3\nu1") == ["u1", "u2", "u3"]


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("string", " spaced ", " spaced "),
        ("boolean", "TRUE", True),
        ("integer", "-42", -42),
        ("float", "1.5", 1.5),
        ("float", "2", 2.0),
        ("object", '{"a": [1, 2]}', {"a": [1, 2]}),
    ],
)
def test_value__per_kind__parsed_and_formatted(kind: str, text: str, value: Any) -> None:
    assert parse_value(kind, text) == value
    assert parse_value(kind, format_value(kind, value)) == value


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("boolean", "yes"),
        ("integer", "1.0"),
        ("float", "nan"),
        ("float", "x"),
        ("object", "3"),
        ("object", "{bad"),
    ],
)
def test_value__wrong_for_kind__validation_error(kind: str, text: str) -> None:
    with pytest.raises(ValidationError):
        parse_value(kind, text)


def test_syntax_module__imports__no_django_admin_forms_or_models() -> None:
    """The text syntax is a pure module (issue 12): it reads and writes the ruleset-format
    JSON and nothing else, so it can be reused outside the admin (and tested without it)."""
    import ast
    from pathlib import Path

    import flagapp.admin.syntax as syntax

    tree = ast.parse(Path(syntax.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {
        "__future__",
        "json",
        "re",
        "collections.abc",
        "typing",
        "django.core.exceptions",
        "openfeature_provider.engine.operators",
    }, imported


def test_serve_syntax__flagd_cbor_hash__round_trips() -> None:
    """Why: an admin edit that dropped ``hash`` would silently reshuffle about half of a
    flagd-cbor rollout's users (the default hash buckets differently)."""
    from flagapp.admin.syntax import format_serve, parse_serve

    serve = {
        "rollout": {
            "weights": [{"variant": "on", "weight": 10}, {"variant": "off", "weight": 90}],
            "hash": "flagd-cbor",
        }
    }
    text = format_serve(serve)
    assert text == "on:10 off:90 hash=flagd-cbor"
    assert parse_serve(text, allow_empty=False) == serve
