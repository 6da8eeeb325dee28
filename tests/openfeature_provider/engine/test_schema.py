"""The JSON Schema of format v1 (package data) agrees with the parser on every fixture."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from openfeature_provider.engine import SCHEMA_PATH, ParseError, load_schema, parse_ruleset
from tests.conformance.cases import load_files
from tests.openfeature_provider.engine.test_parse_errors import BAD, base

FIXTURES = [(stem, doc["ruleset"]) for stem, doc in load_files()]

# Invalid documents the schema cannot see (cross references, value formats, cycles).
PARSER_ONLY = {
    "served-variant-undefined",
    "fallthrough-variant-undefined",
    "weights-sum-zero",
    "weights-undefined-variant",
    "weights-duplicate",
    "regex-bad",
    "semver-bad",
    "semver-leading-zero",
    "date-naive",
    "date-garbage",
    "cidr-bad",
    "segment-undefined",
    "rule-id-duplicate",
    "prerequisite-undefined",
    "prerequisite-variant-undefined",
    "prerequisite-self",
    "prerequisite-cycle",
    "segment-cycle",
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema__package_data__file_exists_next_to_engine() -> None:
    assert SCHEMA_PATH.is_file()
    assert SCHEMA_PATH.parent.name == "engine"


@pytest.mark.parametrize(("stem", "ruleset"), FIXTURES, ids=[f[0] for f in FIXTURES])
def test_schema__conformance_fixture__valid(
    validator: jsonschema.Draft202012Validator, stem: str, ruleset: dict[str, Any]
) -> None:
    errors = [e.message for e in validator.iter_errors(ruleset)]
    assert errors == []
    parse_ruleset(ruleset)


def test_schema__parse_error_base_document__valid(
    validator: jsonschema.Draft202012Validator,
) -> None:
    validator.validate(base())


@pytest.mark.parametrize(
    ("name", "mutate"),
    [(b[0], b[1]) for b in BAD if b[0] not in PARSER_ONLY],
    ids=[b[0] for b in BAD if b[0] not in PARSER_ONLY],
)
def test_schema__document_parser_rejects__schema_rejects_too(
    validator: jsonschema.Draft202012Validator, name: str, mutate: Any
) -> None:
    doc = base()
    mutate(doc)
    with pytest.raises(ParseError):
        parse_ruleset(copy.deepcopy(doc))
    assert not validator.is_valid(doc), name


@pytest.mark.parametrize("name", sorted(PARSER_ONLY))
def test_schema__parser_only_problem__schema_accepts_it(
    validator: jsonschema.Draft202012Validator, name: str
) -> None:
    """Keeps PARSER_ONLY honest: these really are beyond what the schema expresses."""
    mutate = next(b[1] for b in BAD if b[0] == name)
    doc = base()
    mutate(doc)
    assert validator.is_valid(doc)
