"""A document rebuilt from a parsed ruleset parses to the same ruleset (issue 17 item 4).

Why: the provider no longer keeps the decoded document (``keep_raw=False``); its
last-known-good file is written from ``ruleset_document``, so that document must give back
exactly what was served.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from openfeature_provider.engine import evaluate, parse_ruleset
from openfeature_provider.engine.document import ruleset_document
from tests.conformance.cases import load_files
from tests.openfeature_provider.engine.test_incremental import CONTEXTS, base_doc


@pytest.mark.parametrize(("name", "doc"), list(load_files()), ids=[n for n, _ in load_files()])
def test_ruleset_document__conformance_ruleset_without_raw__reparses_equal(
    name: str, doc: dict[str, Any]
) -> None:
    ruleset = parse_ruleset(doc["ruleset"], keep_raw=False)
    assert ruleset.raw == {}
    rebuilt = ruleset_document(ruleset)
    again = parse_ruleset(json.dumps(rebuilt))  # through JSON, as the file is written
    assert again == ruleset
    for case in doc["cases"]:
        assert evaluate(again, case["flag"], case["context"], case.get("kind")) == evaluate(
            ruleset, case["flag"], case["context"], case.get("kind")
        ), case


def test_ruleset_document__segments_and_prerequisites__same_evaluations() -> None:
    ruleset = parse_ruleset(base_doc(), keep_raw=False)
    again = parse_ruleset(ruleset_document(ruleset))
    assert again == ruleset
    for key in ruleset.flags:
        for ctx in CONTEXTS:
            assert evaluate(again, key, ctx) == evaluate(ruleset, key, ctx)


def test_ruleset_document__raw_kept__the_document_itself() -> None:
    doc = base_doc()
    assert ruleset_document(parse_ruleset(doc)) == doc
