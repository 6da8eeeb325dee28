"""Validators for OFREP responses from the vendored ``ofrep_schema/openapi.yaml``.

Why a helper: every OFREP response shape the tests produce is checked against the protocol's
own schema, and the two places where that schema cannot be applied literally are read the
same way everywhere (documented in docs/interop.md, "OFREP and its schema"):

1. ``evaluationSuccess`` is ``oneOf`` the typed flags *and* ``codeDefaultFlag``, whose schema
   is ``{"type": "object", "properties": {}}`` — it matches every object, so a literal
   ``oneOf`` rejects every answer that carries a value (two branches match). Read here as the
   schema's stated intent: ``codeDefaultFlag`` is "no ``value`` property"
   (``{"not": {"required": ["value"]}}``).
2. ``variant`` is ``type: string``; an answer that serves the caller's default carries
   ``"variant": null`` because the published Python client (openfeature-provider-ofrep 0.3.0)
   reads ``data["variant"]`` unconditionally (tests/flagapp/sdk/test_ofrep_schema.py proves the
   error it raises otherwise). Read here as ``string``, or ``null`` *only* in a
   ``codeDefaultFlag`` answer (no ``value``); a null variant beside a value fails.
3. ``integerFlag`` (``type: integer``) and ``floatFlag`` (``type: number``) both match an
   integer such as ``100`` (and JSON Schema counts ``1.0`` as an integer), so ``oneOf``
   rejects every integer answer. Read as ``anyOf`` over the typed flags (the value is of one
   of the kinds); ``codeDefaultFlag`` stays exclusive through reading 1.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_PATH = Path(__file__).with_name("ofrep_schema") / "openapi.yaml"
_BASE = "https://ofrep.test/openapi.yaml"


@cache
def _document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
    schemas = doc["components"]["schemas"]
    # Reading 1: codeDefaultFlag = an answer without "value".
    schemas["codeDefaultFlag"] = {"type": "object", "not": {"required": ["value"]}}
    success = schemas["evaluationSuccess"]
    # Reading 3: the typed branches overlap (integer ⊂ number): anyOf.
    kinds = success["allOf"][1]
    success["allOf"][1] = {"anyOf": kinds.pop("oneOf")}
    # Reading 2: a null variant only in a codeDefaultFlag answer.
    success["allOf"][0]["properties"]["variant"] = {"type": ["string", "null"]}
    success["allOf"].append(
        {
            "if": {"properties": {"variant": {"type": "null"}}, "required": ["variant"]},
            "then": {"not": {"required": ["value"]}},
        }
    )
    return doc


def validator(component: str) -> Draft202012Validator:
    """A validator of ``#/components/schemas/<component>`` (with the two readings)."""
    doc = copy.deepcopy(_document())
    registry: Registry[Any] = Registry().with_resource(
        _BASE, Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"{_BASE}#/components/schemas/{component}"}, registry=registry
    )


def literal_validator(component: str) -> Draft202012Validator:
    """The component exactly as published (to show where it is inconsistent)."""
    doc: dict[str, Any] = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry().with_resource(
        _BASE, Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"{_BASE}#/components/schemas/{component}"}, registry=registry
    )


#: HTTP status -> the component its body must satisfy, per endpoint (openapi.yaml "responses").
SINGLE = {200: "serverEvaluationSuccess", 400: "evaluationFailure", 404: "flagNotFound"}
BULK = {200: "bulkEvaluationSuccess", 400: "bulkEvaluationFailure"}


def assert_valid(body: Any, status: int, *, bulk: bool = False) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` fits the status's schema."""
    component = (BULK if bulk else SINGLE)[status]
    validator(component).validate(body)
