"""flagd import: exact or refused, checked against flagd itself and against the exporter.

Why: importing flagd definitions is only safe if flagapp then serves every user what flagd
served. Three checks: (1) every document the exporter writes reads back to the same
definitions (export -> import -> export is identical); (2) hand-written flagd files using the
operators flagd users write (``==``, ``in``, ``$ref``, ``sem_ver`` ``^``/``~``, ``or``
branches, nested ``if``, shorthand ``fractional``) are evaluated by openfeature-flagd-core
2.0.0 and by the engine after import on 10,000 random contexts with the same value and
variant; (3) what has no exact form is refused naming the flag and the JSON path.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore

from openfeature_provider.engine import evaluate, parse_ruleset
from openfeature_provider.interop.flagd import export_flagd
from openfeature_provider.interop.flagd_import import (
    FlagdImportError,
    as_document,
    import_flagd,
    infer_kind,
)

from .test_flagd_export import (
    CONTEXTS,
    FLAGS,
    SEGMENTS,
    VALIDATOR,
    _doc,
    _flagd_resolve,
    _random_context,
    _w,
)

LEGACY_FLAGS: dict[str, dict[str, Any]] = {
    "legacy.default-salt": {
        "kind": "string",
        "enabled": True,
        "variants": {"a": "x", "b": "y"},
        "fallthrough": {"rollout": {"weights": _w(("a", 3), ("b", 1))}},
    },
    "legacy.salted-attr": {
        "kind": "string",
        "enabled": True,
        "variants": {"a": "x", "b": "y"},
        "rules": [
            {
                "id": "r",
                "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
                "serve": {
                    "rollout": {
                        "salt": "shared",
                        "bucket_by": "company.id",
                        "weights": _w(("a", 1), ("b", 1)),
                    }
                },
            }
        ],
        "fallthrough": {"variant": "b"},
    },
}


@pytest.mark.parametrize(
    ("bucketing", "flags"),
    [("cbor", FLAGS), ("legacy", LEGACY_FLAGS)],
    ids=["cbor", "legacy"],
)
def test_import_flagd__exporter_output__round_trip_identical(
    bucketing: Any, flags: dict[str, Any]
) -> None:
    exported = export_flagd(_doc(flags, SEGMENTS), bucketing)
    document = as_document(import_flagd(exported, bucketing))
    parse_ruleset(document)  # the engine accepts what was read
    again = export_flagd({**document, "environment": "prod", "version": 3}, bucketing)
    assert json.dumps(again, sort_keys=True) == json.dumps(exported, sort_keys=True)


#: flagd definitions as people write them (the testbed's idioms), none written by flagapp.
HANDWRITTEN: dict[str, Any] = {
    "flags": {
        "eq-ref": {
            "state": "ENABLED",
            "variants": {"hi": "hi", "bye": "bye", "none": "none"},
            "defaultVariant": "none",
            "targeting": {"if": [{"$ref": "is_admin"}, "hi", "bye"]},
        },
        "nested-if": {
            "state": "ENABLED",
            "variants": {"p": "prefix", "s": "postfix", "n": "none"},
            "defaultVariant": "n",
            "targeting": {
                "if": [
                    {"starts_with": [{"var": "email"}, "admin"]},
                    "p",
                    {"if": [{"ends_with": [{"var": "email"}, "@beta.io"]}, "s", None]},
                ]
            },
        },
        "or-branches": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {
                "if": [
                    {
                        "or": [
                            {"==": ["pro", {"var": "plan"}]},
                            {"in": [{"var": ["email"]}, ["root@x.org", "bob@corp.io"]]},
                        ]
                    },
                    "on",
                ]
            },
        },
        "semver-range": {
            "state": "ENABLED",
            "variants": {"minor": 1, "major": 2, "none": 0},
            "defaultVariant": "none",
            "targeting": {
                "if": [
                    {"sem_ver": [{"var": "app.version"}, "~", "2.1.0"]},
                    "minor",
                    {"sem_ver": [{"var": "app.version"}, "^", "2.0.0"]},
                    "major",
                    None,
                ]
            },
        },
        "split-after-rule": {
            "state": "ENABLED",
            "variants": {"a": "alpha", "b": "beta", "c": "gamma"},
            "defaultVariant": "c",
            "targeting": {
                "if": [
                    {"in": ["@corp", {"var": "email"}]},
                    "c",
                    {"fractional": [["a"], ["b", 3]]},
                ]
            },
        },
        "disabled": {
            "state": "DISABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        },
    },
    "$evaluators": {"is_admin": {"==": ["admin@example.com", {"var": ["email"]}]}},
}


@pytest.mark.parametrize("key", list(HANDWRITTEN["flags"]))
def test_import_flagd__handwritten_flagd_10k_random_contexts__identical_to_flagd_core(
    key: str,
) -> None:
    defs = {"flags": {key: HANDWRITTEN["flags"][key]}, "$evaluators": HANDWRITTEN["$evaluators"]}
    VALIDATOR.validate(defs)
    ruleset = parse_ruleset(as_document(import_flagd(defs)))
    core = FlagdCore()
    core.set_flags(json.dumps(defs))
    kind = infer_kind(defs["flags"][key]["variants"])
    assert kind is not None
    rng = random.Random(f"flagd-import-{key}")
    for _ in range(CONTEXTS):
        ctx = _random_context(rng)
        res = evaluate(ruleset, key, ctx)
        expected = (None, None) if res.use_default else (res.value, res.variant)
        got = _flagd_resolve(core, key, kind, ctx)
        assert got == expected, (ctx, got, expected)


REFUSED = [
    (
        {"fractional": [{"var": "targetingKey"}, ["a", 1], ["b", 1]]},
        "cbor",
        ".targeting.fractional[0]",
        "legacy",
    ),
    ({"fractional": [["a", 0], ["b", 0]]}, "cbor", ".targeting.fractional", "sum to 0"),
    (
        {"fractional": [[{"var": "color"}, 1], ["b", 1]]},
        "cbor",
        ".targeting.fractional[0][0]",
        "computed",
    ),
    (
        {"fractional": [{"var": "k"}, ["a", {"if": [True, 1, 0]}]]},
        "legacy",
        ".targeting.fractional[1][1]",
        "computed",
    ),
    ({"if": [{"<": [{"var": "n"}, 3]}, "a"]}, "cbor", '.targeting.if[0]["<"]', "'<'"),
    ({"if": [{"==": [{"var": "n"}, 3]}, "a"]}, "cbor", '.targeting.if[0]["=="][1]', "loosely"),
    ({"if": [{"!": {"in": [{"var": "p"}, ["x"]]}}, "a"]}, "cbor", '.targeting.if[0]["!"]', "guard"),
    (
        {"if": [{"sem_ver": [{"var": "v"}, "=", "v1.0.0"]}, "a"]},
        "cbor",
        '.targeting.if[0]["sem_ver"][2]',
        "SemVer",
    ),
    (
        {"if": [{"starts_with": ["abc"]}, "a"]},
        "cbor",
        '.targeting.if[0]["starts_with"]',
        "two arguments",
    ),
    ({"if": [{"$ref": "nope"}, "a"]}, "cbor", '.targeting.if[0]["$ref"]', "no evaluator"),
    (
        {"if": [{"==": [{"var": "$flagd.timestamp"}, "1"]}, "a"]},
        "cbor",
        '.targeting.if[0]["=="][0].var',
        "$flagd.timestamp",
    ),
    ({"if": [{"==": [{"var": "p"}, "x"]}, None, "a"]}, "cbor", ".targeting.if[1]", "null"),
    ({"sem_ver": [{"var": "v"}, "=", "1.0.0"]}, "cbor", ".targeting", "variant"),
    ({"if": [{"==": [{"var": "p"}, "x"]}, "zzz"]}, "cbor", ".targeting.if[1]", "unknown variant"),
]


@pytest.mark.parametrize(
    ("targeting", "mode", "path", "words"), REFUSED, ids=[r[2] + "-" + r[1] for r in REFUSED]
)
def test_import_flagd__inexpressible__refused_naming_flag_and_path(
    targeting: Any, mode: Any, path: str, words: str
) -> None:
    defs = {
        "flags": {
            "f": {
                "state": "ENABLED",
                "variants": {"a": "x", "b": "y"},
                "defaultVariant": "a",
                "targeting": targeting,
            }
        }
    }
    with pytest.raises(FlagdImportError) as err:
        import_flagd(defs, mode)
    assert err.value.flag == "f"
    assert err.value.path == '$.flags["f"]' + path
    assert "flag 'f'" in str(err.value) and words in str(err.value)


@pytest.mark.parametrize(
    ("flag", "path", "words"),
    [
        ({"state": "ON", "variants": {"a": 1}}, ".state", "ENABLED or DISABLED"),
        ({"state": "ENABLED", "variants": {"a": 1, "b": "x"}}, ".variants", "mixed"),
        (
            {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "b"},
            ".defaultVariant",
            "'b'",
        ),
        (
            {"state": "ENABLED", "variants": {"a": 1}, "metadata": {"team": "x"}},
            '.metadata["team"]',
            "derived",
        ),
        ({"state": "ENABLED", "variants": {"a": 1}, "extra": 1}, "", "extra"),
    ],
)
def test_import_flagd__bad_flag__refused_naming_field(flag: Any, path: str, words: str) -> None:
    with pytest.raises(FlagdImportError) as err:
        import_flagd({"flags": {"f": flag}})
    assert err.value.path == '$.flags["f"]' + path
    assert words in str(err.value)


def test_import_flagd__metadata__flagapp_fields_read_version_ignored() -> None:
    out = import_flagd(
        {
            "flags": {
                "f": {
                    "state": "ENABLED",
                    "variants": {"a": 1.5, "b": 2},
                    "defaultVariant": "a",
                    "metadata": {"owner": "web", "type": "ops", "risk": "high", "version": 7},
                }
            }
        }
    )
    flag = out["flags"]["f"]
    assert flag["fields"] == {"owner": "web", "type": "ops", "risk": "high"}
    assert flag["fallthrough"] == {"variant": "a"} and flag["rules"] == []
    assert infer_kind(flag["variants"]) == "float"
