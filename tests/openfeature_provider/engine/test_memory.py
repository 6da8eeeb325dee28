"""A replaced ruleset is freed by reference counting alone (issue 17).

Why: a ruleset whose compiled objects form reference cycles stays in memory as cyclic
garbage until a full collection, which at 10,000 flags stops every thread for seconds (and
RSS climbs by a ruleset per swap until then). These tests run with the cyclic collector off,
so anything a cycle keeps alive is still alive when they look.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from openfeature_provider.engine import codegen, evaluate, parse_ruleset
from tests.conformance.cases import load_files


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _all_documents() -> list[tuple[str, dict[str, Any]]]:
    return list(load_files())


@pytest.mark.parametrize("codegen_on", [True, False], ids=["codegen", "closures"])
@pytest.mark.parametrize(("name", "doc"), _all_documents(), ids=[n for n, _ in _all_documents()])
def test_parse_ruleset__conformance_document_dropped__freed_by_refcounting_alone(
    no_cyclic_gc: None,
    name: str,
    doc: dict[str, Any],
    codegen_on: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(codegen, "ENABLED", codegen_on)
    ruleset = parse_ruleset(doc["ruleset"])
    for case in doc["cases"]:  # evaluated once, so lazily built state exists too
        evaluate(ruleset, case["flag"], case["context"])
    refs = [weakref.ref(ruleset)]
    refs += [weakref.ref(f.compiled) for f in ruleset.flags.values() if f.compiled is not None]
    del ruleset
    alive = [r() for r in refs if r() is not None]
    assert alive == [], f"{len(alive)} objects of {name} kept alive by reference cycles"


def test_parse_ruleset__prerequisite_chain__no_cycle_through_the_registry(
    no_cyclic_gc: None,
) -> None:
    bool_flag: dict[str, Any] = {
        "kind": "boolean",
        "enabled": True,
        "variants": {"on": True, "off": False},
        "fallthrough": {"variant": "on"},
    }
    doc = {
        "format": 1,
        "environment": "t",
        "version": 1,
        "flags": {
            "a": {**bool_flag, "prerequisites": [{"flag": "b", "variants": ["on"]}]},
            "b": {**bool_flag, "prerequisites": [{"flag": "c", "variants": ["on"]}]},
            "c": bool_flag,
        },
    }
    ruleset = parse_ruleset(doc)
    assert evaluate(ruleset, "a", {"targetingKey": "u"}).value is True
    compiled_a = ruleset.flags["a"].compiled
    assert compiled_a is not None
    ref = weakref.ref(compiled_a)
    del ruleset, compiled_a
    assert ref() is None, f"kept alive by {gc.get_referrers(ref())!r}"
