"""The per-rollout hash algorithm (``"hash"``): ``murmur3-concat`` (default) and ``flagd-cbor``.

Why: flagd-core 2.x hashes the canonical CBOR encoding of ``[flagKey, targetingKey]`` instead
of the concatenated strings, so a flag bucketed the old way splits users 50/50 *at random*
against it. The engine encodes CBOR itself (stdlib only); cbor2 is the reference here.
"""

from __future__ import annotations

import random
from typing import Any

import cbor2
import mmh3
import pytest

from openfeature_provider.engine import ParseError, evaluate, parse_ruleset
from openfeature_provider.engine.bucketing import (
    FLAGD_CBOR,
    MURMUR3_CONCAT,
    UnusableBucketValue,
    cbor_text,
    choose,
    hash32,
    key_bytes,
)

TEXTS = [
    "",
    "a",
    "x" * 23,
    "x" * 24,
    "y" * 255,
    "y" * 256,
    "z" * 65535,
    "z" * 65536,
    "ユーザー",
    "ui.ünïcode",
    "🚀" * 10,
]


@pytest.mark.parametrize("text", TEXTS, ids=[f"len{len(t)}" for t in TEXTS])
def test_cbor_text__every_length_class__equals_cbor2_canonical(text: str) -> None:
    """Heads of 1, 2, 3 and 5 bytes (length < 24, < 256, < 65536, larger) all as cbor2."""
    assert cbor_text(text) == cbor2.dumps(text, canonical=True)


@pytest.mark.parametrize("salt", ["checkout.new-flow", "", "ui.ünïcode", "s" * 300])
@pytest.mark.parametrize("value", ["user-1", "", "ユーザー", "v" * 70000])
def test_key_bytes__flagd_cbor__equals_cbor2_array_and_flagd_hash(salt: str, value: str) -> None:
    expected = cbor2.dumps([salt, value], canonical=True)
    assert key_bytes(salt, value, FLAGD_CBOR) == expected
    assert hash32(salt, value, FLAGD_CBOR) == mmh3.hash(expected, signed=False)


def test_key_bytes__default__unchanged_concatenation() -> None:
    """The default stays UTF-8 of salt + value: no existing rollout is reshuffled."""
    assert key_bytes("s", "v") == b"sv" == key_bytes("s", "v", MURMUR3_CONCAT)
    assert hash32("checkout.new-flow", "user-1") == 1389139576  # docs/bucketing.md vector


def test_key_bytes__flagd_cbor_lone_surrogate__unusable() -> None:
    with pytest.raises(UnusableBucketValue):
        key_bytes("f", "\ud800", FLAGD_CBOR)


def _doc(rollout: dict[str, Any], in_rule: bool) -> dict[str, Any]:
    flag: dict[str, Any] = {
        "kind": "string",
        "enabled": True,
        "variants": {v: v for v in ("a", "b", "c")},
    }
    if in_rule:
        flag["rules"] = [
            {
                "id": "r",
                "when": [{"attr": "plan", "op": "in", "values": ["pro"]}],
                "serve": {"rollout": rollout},
            }
        ]
        flag["fallthrough"] = {"variant": "c"}
    else:
        flag["fallthrough"] = {"rollout": rollout}
    return {"format": 1, "environment": "t", "version": 1, "flags": {"exp.pricing": flag}}


@pytest.mark.parametrize("in_rule", [False, True], ids=["fallthrough", "rule"])
@pytest.mark.parametrize("weights", [[50, 50], [50, 25, 25], [0, 100]], ids=str)
@pytest.mark.parametrize("bucket_by", ["targetingKey", "company.id"])
def test_rollout__flagd_cbor__every_compiled_path_equals_reference(
    in_rule: bool, weights: list[int], bucket_by: str
) -> None:
    rollout = {
        "hash": "flagd-cbor",
        "bucket_by": bucket_by,
        "weights": [{"variant": v, "weight": w} for v, w in zip("abc", weights, strict=False)],
    }
    ruleset = parse_ruleset(_doc(rollout, in_rule))
    rng = random.Random(15)
    for _ in range(500):
        key = f"user-{rng.getrandbits(40):x}"
        ctx: dict[str, Any] = {"plan": "pro", "targetingKey": key, "company": {"id": key}}
        res = evaluate(ruleset, "exp.pricing", ctx)
        assert res.variant == "abc"[choose("exp.pricing", key, weights, FLAGD_CBOR)]


def test_rollout__flagd_cbor_vs_default__different_users_same_shares() -> None:
    """The two algorithms are really different (about half the users differ on 50/50)."""
    keys = [f"user-{i}" for i in range(2000)]
    default = [choose("exp", k, [1, 1]) for k in keys]
    cbor = [choose("exp", k, [1, 1], FLAGD_CBOR) for k in keys]
    differ = sum(a != b for a, b in zip(default, cbor, strict=True))
    assert 800 < differ < 1200
    assert 900 < sum(cbor) < 1100


def test_ruleset__unknown_hash__parse_error_names_field() -> None:
    rollout = {"hash": "sha1", "weights": [{"variant": "a", "weight": 1}]}
    with pytest.raises(ParseError) as err:
        parse_ruleset(_doc(rollout, in_rule=False))
    assert "$.flags['exp.pricing'].fallthrough.rollout.hash" in str(err.value) or ".hash" in str(
        err.value
    )
    assert "flagd-cbor" in str(err.value)
