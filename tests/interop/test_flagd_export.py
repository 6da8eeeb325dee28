"""flagd export: exact or refused, checked against flagd itself.

Why: "export to flagd" is only worth having if flagd serves every user the same variant as
flagapp. openfeature-flagd-core 2.0.0 (the evaluator of the current Python flagd provider)
evaluates the exported definitions for 10,000 random contexts per flag shape and must agree
on value and variant every time. flagd-core 1.x cannot be installed beside 2.x (same import
package), so the legacy form is checked with 2.x's JSON Logic plus flagd-core 1.0.0's
``fractional`` transcribed below (murmur3 of the string the bucketing expression yields).
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from typing import Any

import mmh3
import pytest
from json_logic import jsonLogic
from jsonschema import Draft7Validator
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.contrib.tools.flagd.core.targeting.targeting import OPERATORS
from openfeature.evaluation_context import EvaluationContext
from referencing import Registry, Resource

from openfeature_provider.engine import evaluate, parse_ruleset
from openfeature_provider.interop.flagd import FlagdExportError, export_flagd

SCHEMA_DIR = Path(__file__).with_name("flagd_schema")
CONTEXTS = 10_000


def _validator() -> Draft7Validator:
    flags = json.loads((SCHEMA_DIR / "flags.json").read_text())
    targeting = json.loads((SCHEMA_DIR / "targeting.json").read_text())
    registry: Registry[Any] = Registry().with_resources(
        [
            (flags["$id"], Resource.from_contents(flags)),
            (targeting["$id"], Resource.from_contents(targeting)),
            # draft-07 ignores "$id" beside the root "$ref", so the relative reference is
            # resolved against no base at all.
            ("./targeting.json", Resource.from_contents(targeting)),
        ]
    )
    return Draft7Validator(flags, registry=registry)


VALIDATOR = _validator()


def _w(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"variant": v, "weight": w} for v, w in pairs]


def _cbor(*pairs: tuple[str, int]) -> dict[str, Any]:
    return {"rollout": {"hash": "flagd-cbor", "weights": _w(*pairs)}}


BOOL = {"on": True, "off": False}
ABC = {"a": "alpha", "b": "beta", "c": "gamma"}

#: One flag per shape the issue names; every shape is exportable under cbor.
FLAGS: dict[str, dict[str, Any]] = {
    "bool.on": {
        "kind": "boolean",
        "enabled": True,
        "variants": BOOL,
        "fallthrough": {"variant": "on"},
    },
    "bool.off": {
        "kind": "boolean",
        "enabled": False,
        "variants": BOOL,
        "fallthrough": {"variant": "on"},
    },
    "rule": {
        "kind": "string",
        "enabled": True,
        "variants": ABC,
        "rules": [
            {
                "id": "r1",
                "when": [
                    {"attr": "plan", "op": "in", "values": ["pro", "ent"]},
                    {"attr": "email", "op": "ends_with", "values": ["@example.com"]},
                ],
                "serve": {"variant": "a"},
            },
            {
                "id": "r2",
                "when": [{"attr": "email", "op": "starts_with", "values": ["admin", "root"]}],
                "serve": {"variant": "b"},
            },
            {
                "id": "r3",
                "when": [
                    {"attr": "plan", "op": "not_in", "values": ["free"]},
                    {"attr": "tags", "op": "contains", "values": ["x"]},
                ],
                "serve": {"variant": "a"},
            },
            {"id": "r4", "when": [{"attr": "country", "op": "exists"}], "serve": {"variant": "b"}},
        ],
        "fallthrough": {"variant": "c"},
    },
    "split.50": {
        "kind": "boolean",
        "enabled": True,
        "variants": BOOL,
        "fallthrough": _cbor(("on", 50), ("off", 50)),
    },
    "split.3way": {
        "kind": "string",
        "enabled": True,
        "variants": ABC,
        "rules": [
            {
                "id": "r",
                "when": [{"attr": "plan", "op": "eq", "values": ["free"]}],
                "serve": {"variant": "c"},
            }
        ],
        "fallthrough": _cbor(("a", 5000), ("b", 2500), ("c", 2500)),
    },
    "segment": {
        "kind": "integer",
        "enabled": True,
        "variants": {"one": 1, "two": 2, "zero": 0},
        "rules": [
            {
                "id": "r",
                "when": [{"op": "in_segment", "values": ["beta"]}],
                "serve": {"variant": "one"},
            },
            {
                "id": "s",
                "when": [{"op": "not_in_segment", "values": ["staff"]}],
                "serve": _cbor(("two", 1), ("zero", 3)),
            },
        ],
        "fallthrough": None,
    },
    "semver": {
        "kind": "float",
        "enabled": True,
        "variants": {"new": 2.5, "old": 1.0},
        "rules": [
            {
                "id": "r",
                "when": [
                    {"attr": "app.version", "op": "semver_gte", "values": ["2.1.0"]},
                    {"attr": "app.version", "op": "semver_lt", "values": ["3.0.0-rc.1"]},
                ],
                "serve": {"variant": "new"},
            }
        ],
        "fallthrough": {"variant": "old"},
    },
}
SEGMENTS = {
    "beta": {
        "include": ["user-1", "user-2"],
        "exclude": ["user-3"],
        "when": [
            {"attr": "email", "op": "ends_with", "values": ["@beta.io"]},
            {"op": "in_segment", "values": ["staff"]},
        ],
    },
    "staff": {
        "include": [],
        "exclude": [],
        "when": [{"attr": "email", "op": "contains", "values": ["@corp"]}],
    },
}
KINDS = {"boolean": "boolean", "string": "string", "integer": "integer", "float": "float"}


def _doc(flags: dict[str, Any], segments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format": 1,
        "environment": "prod",
        "version": 3,
        "flags": flags,
        "segments": segments or {},
    }


def _random_context(rng: random.Random) -> dict[str, Any]:
    """Contexts that exercise every branch: missing, wrong-typed and matching attributes."""
    ctx: dict[str, Any] = {
        "targetingKey": rng.choice(
            [
                f"user-{rng.randrange(6)}",
                "".join(rng.choices(string.printable, k=12)),
                f"ü-{rng.getrandbits(48):x}-ユ",
            ]
        )
    }
    pick = rng.random
    if pick() < 0.8:
        ctx["plan"] = rng.choice(["pro", "ent", "free", "Pro", 1, True, None])
    if pick() < 0.8:
        local = rng.choice(["admin", "root", "bob", "rooted", ""])
        domain = rng.choice(["@example.com", "@beta.io", "@corp.io", "@x.org", ""])
        ctx["email"] = rng.choice([local + domain, 7, None])
    if pick() < 0.5:
        ctx["tags"] = rng.choice([["x"], ["y", "x"], [], "xyz", "abc", 3])
    if pick() < 0.3:
        ctx["country"] = rng.choice(["US", 0, False, None, ""])
    if pick() < 0.8:
        major, minor = rng.randrange(1, 4), rng.randrange(0, 3)
        pre = rng.choice(["", "", "-rc.1", "-alpha", "-rc.2"])
        ctx["app"] = {"version": rng.choice([f"{major}.{minor}.{rng.randrange(3)}{pre}", 3])}
    return ctx


def _flagd_resolve(core: FlagdCore, key: str, kind: str, ctx: dict[str, Any]) -> tuple[Any, Any]:
    attrs = {k: v for k, v in ctx.items() if k != "targetingKey"}
    ec = EvaluationContext(targeting_key=ctx["targetingKey"], attributes=attrs)
    resolve = getattr(core, f"resolve_{kind}_value")
    sentinel = {"boolean": None, "string": None, "integer": None, "float": None}[kind]
    details = resolve(key, sentinel, ec)
    return details.value, details.variant


@pytest.mark.parametrize("key", list(FLAGS))
def test_export_flagd__cbor_shapes_10k_random_contexts__identical_to_engine(key: str) -> None:
    """value and variant agree with flagd-core 2.0.0 for every one of 10,000 contexts."""
    doc = _doc({key: FLAGS[key]}, SEGMENTS)
    ruleset = parse_ruleset(doc)
    exported = export_flagd(doc)
    VALIDATOR.validate(exported)
    core = FlagdCore()
    core.set_flags(json.dumps(exported))
    kind = FLAGS[key]["kind"]
    rng = random.Random(f"flagd-{key}")
    for _ in range(CONTEXTS):
        ctx = _random_context(rng)
        res = evaluate(ruleset, key, ctx)
        expected = (None, None) if res.use_default else (res.value, res.variant)
        got = _flagd_resolve(core, key, kind, ctx)
        assert got == expected, (ctx, got, expected)
        if not res.use_default:
            assert type(got[0]) is type(expected[0])


def _legacy_fractional(data: dict[str, Any], *args: Any) -> Any:
    """flagd-core 1.0.0's ``fractional`` (custom_ops.py), the hashing lines verbatim:
    ``mmh3.hash(bucket_by, signed=False)`` of the string the bucketing expression yields."""
    if isinstance(args[0], (list, tuple)):
        bucket_by = data.get("$flagd", {}).get("flagKey", "") + (data.get("targetingKey") or "")
    else:
        bucket_by, args = args[0], args[1:]
    if not bucket_by:
        return None
    hash_value = mmh3.hash(bucket_by, signed=False)
    total = sum(a[1] for a in args)
    bucket = (hash_value * total) >> 32
    end = 0
    for variant, weight in args:
        end += weight
        if bucket < end:
            return variant
    return None


@pytest.mark.parametrize("salt", [None, "shared-salt"])
@pytest.mark.parametrize("bucket_by", ["targetingKey", "company.id"])
def test_export_flagd__legacy_rollouts__identical_under_flagd_1x_fractional(
    salt: str | None, bucket_by: str
) -> None:
    rollout: dict[str, Any] = {
        "bucket_by": bucket_by,
        "weights": _w(("a", 5000), ("b", 2500), ("c", 2500)),
    }
    if salt is not None:
        rollout["salt"] = salt
    flag = {"kind": "string", "enabled": True, "variants": ABC, "fallthrough": {"rollout": rollout}}
    doc = _doc({"exp.pricing": flag})
    ruleset = parse_ruleset(doc)
    exported = export_flagd(doc, bucketing="legacy")
    VALIDATOR.validate(exported)
    targeting = exported["flags"]["exp.pricing"]["targeting"]
    ops = {**OPERATORS, "fractional": _legacy_fractional}
    rng = random.Random(7)
    for _ in range(CONTEXTS):
        value = rng.choice(
            [
                f"u{rng.getrandbits(40)}",
                "".join(rng.choices(string.printable, k=9)),
                f"ユーザー{rng.randrange(10**6)}",
            ]
        )
        ctx = {"targetingKey": value, "company": {"id": value}}
        data = {**ctx, "$flagd": {"flagKey": "exp.pricing", "timestamp": 0}}
        assert jsonLogic(targeting, data, ops) == evaluate(ruleset, "exp.pricing", ctx).variant


REFUSED = [
    (
        {
            "kind": "boolean",
            "enabled": True,
            "variants": BOOL,
            "fallthrough": {"rollout": {"weights": _w(("on", 1), ("off", 1))}},
        },
        "cbor",
        '$.flags["f"].fallthrough.rollout.hash',
        "--flagd-bucketing legacy",
    ),
    (
        {
            "kind": "boolean",
            "enabled": True,
            "variants": BOOL,
            "fallthrough": {
                "rollout": {"hash": "flagd-cbor", "weights": _w(("on", 1), ("off", 1))}
            },
        },
        "legacy",
        '$.flags["f"].fallthrough.rollout.hash',
        "flagd-core 1.x",
    ),
    (
        {
            "kind": "boolean",
            "enabled": True,
            "variants": BOOL,
            "fallthrough": {
                "rollout": {
                    "hash": "flagd-cbor",
                    "bucket_by": "org",
                    "weights": _w(("on", 1), ("off", 1)),
                }
            },
        },
        "cbor",
        '$.flags["f"].fallthrough.rollout.bucket_by',
        "'org'",
    ),
    (
        {
            "kind": "boolean",
            "enabled": True,
            "variants": BOOL,
            "fallthrough": {
                "rollout": {"hash": "flagd-cbor", "salt": "s", "weights": _w(("on", 1), ("off", 1))}
            },
        },
        "cbor",
        '$.flags["f"].fallthrough.rollout.salt',
        "salt",
    ),
    (
        {
            "kind": "boolean",
            "enabled": True,
            "variants": BOOL,
            "fallthrough": {"variant": "on"},
            "rules": [
                {
                    "id": "r",
                    "when": [{"attr": "ip", "op": "in_cidr", "values": ["10.0.0.0/8"]}],
                    "serve": {"variant": "off"},
                }
            ],
        },
        "cbor",
        '$.flags["f"].rules[0].when[0].op',
        "'in_cidr'",
    ),
    (
        {
            "kind": "boolean",
            "enabled": True,
            "variants": BOOL,
            "fallthrough": {"variant": "on"},
            "rules": [
                {
                    "id": "r",
                    "when": [{"attr": "n", "op": "eq", "values": [1]}],
                    "serve": {"variant": "off"},
                }
            ],
        },
        "cbor",
        '$.flags["f"].rules[0].when[0].values[0]',
        "string values only",
    ),
    (
        {
            "kind": "boolean",
            "enabled": True,
            "variants": BOOL,
            "fallthrough": {"variant": "on"},
            "rules": [
                {
                    "id": "r",
                    "when": [{"attr": "n", "op": "eq", "values": ["a"], "negate": True}],
                    "serve": {"variant": "off"},
                }
            ],
        },
        "cbor",
        '$.flags["f"].rules[0].when[0].negate',
        "negated",
    ),
    (
        {
            "kind": "boolean",
            "enabled": True,
            "variants": BOOL,
            "fallthrough": {"variant": "on"},
            "prerequisites": [{"flag": "g", "variants": ["on"]}],
        },
        "cbor",
        '$.flags["f"].prerequisites',
        "prerequisites",
    ),
]


@pytest.mark.parametrize(
    ("flag", "mode", "path", "words"),
    REFUSED,
    ids=[r[2].split(".", 2)[-1] + "-" + r[1] for r in REFUSED],
)
def test_export_flagd__inexpressible__refused_naming_flag_and_path(
    flag: dict[str, Any], mode: Any, path: str, words: str
) -> None:
    flags = {"f": flag, "g": {"kind": "boolean", "enabled": True, "variants": BOOL}}
    parse_ruleset(_doc(flags))  # a valid flagapp document
    with pytest.raises(FlagdExportError) as err:
        export_flagd(_doc(flags), bucketing=mode)
    assert err.value.flag == "f"
    assert err.value.path == path
    assert "flag 'f'" in str(err.value) and path in str(err.value) and words in str(err.value)


def test_export_flagd__document__schema_valid_with_evaluators_and_metadata() -> None:
    doc = _doc(FLAGS, SEGMENTS)
    exported = export_flagd(doc)
    VALIDATOR.validate(exported)
    assert set(exported["$evaluators"]) == {"beta", "staff"}
    assert exported["metadata"] == {"flagSetId": "prod", "version": "3"}
    assert exported["flags"]["segment"]["defaultVariant"] is None
    assert exported["flags"]["bool.off"]["state"] == "DISABLED"
    assert exported["flags"]["split.50"]["targeting"] == {"fractional": [["on", 50], ["off", 50]]}
