"""Bucketing: flagd fractional v2 arithmetic, checked against an independent murmur3 and the
documented test vectors, plus statistical properties of rollouts."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency

from openfeature_provider.engine import evaluate, parse_ruleset
from openfeature_provider.engine.bucketing import bucket, choose, hash32
from tests.openfeature_provider.engine.murmur_reference import (
    murmur3_32,
    reference_bucket,
    reference_variant,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "bucketing.md"
ROW = re.compile(r"^\| `(.*)` \| `(.*)` \| (\d+) \| (\d+) \| (\d+) \| (on|off) \| ([abc]) \|$")


def _vectors() -> list[tuple[str, ...]]:
    rows = [m.groups() for line in DOC.read_text("utf-8").splitlines() if (m := ROW.match(line))]
    assert len(rows) >= 10, "docs/bucketing.md lost its test vector table"
    return rows


VECTORS = _vectors()
W2 = [("on", 2500), ("off", 7500)]
W3 = [("a", 50), ("b", 25), ("c", 25)]


def _flag_doc(key: str, weights: list[tuple[str, int]], salt: str | None = None) -> dict[str, Any]:
    rollout: dict[str, Any] = {"weights": [{"variant": v, "weight": w} for v, w in weights]}
    if salt is not None:
        rollout["salt"] = salt
    return {
        "kind": "string",
        "enabled": True,
        "variants": {v: v for v, _ in weights},
        "fallthrough": {"rollout": rollout},
    }


def _ruleset(flags: dict[str, Any]) -> Any:
    return parse_ruleset({"format": 1, "environment": "t", "version": 1, "flags": flags})


@pytest.mark.parametrize("row", VECTORS, ids=[f"{r[0]}+{r[1]}" for r in VECTORS])
def test_vectors__documented__match_reference_and_engine(row: tuple[str, ...]) -> None:
    salt, key, h, b100, b10000, v2, v3 = row
    # the documented numbers, recomputed without the engine
    assert murmur3_32((salt + key).encode("utf-8")) == int(h)
    assert reference_bucket(salt, key, 100) == int(b100)
    assert reference_bucket(salt, key, 10_000) == int(b10000)
    assert reference_variant(salt, key, W2) == v2
    assert reference_variant(salt, key, W3) == v3
    # the engine's helpers and the engine's compiled rollouts agree
    assert hash32(salt, key) == int(h)
    assert bucket(salt, key, 10_000) == int(b10000)
    assert choose(salt, key, [2500, 7500]) == ("on", "off").index(v2)
    rs = _ruleset({"f2": _flag_doc("f2", W2, salt), "f3": _flag_doc("f3", W3, salt)})
    assert evaluate(rs, "f2", {"targetingKey": key}).variant == v2
    assert evaluate(rs, "f3", {"targetingKey": key}).variant == v3


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=40), salt=st.text(max_size=20))
def test_hash__any_text__engine_equals_reference(key: str, salt: str) -> None:
    assert hash32(salt, key) == murmur3_32((salt + key).encode("utf-8"))


@settings(max_examples=200, deadline=None)
@given(
    key=st.text(max_size=30),
    weights=st.lists(st.integers(0, 10_000), min_size=1, max_size=6).filter(lambda w: sum(w) > 0),
)
def test_rollout__same_input__same_variant(key: str, weights: list[int]) -> None:
    named = [(f"v{i}", w) for i, w in enumerate(weights)]
    first = evaluate(_ruleset({"f": _flag_doc("f", named)}), "f", {"targetingKey": key})
    again = evaluate(_ruleset({"f": _flag_doc("f", named)}), "f", {"targetingKey": key})
    assert first.variant == again.variant == reference_variant("f", key, named)
    assert first.reason == "SPLIT"
    assert dict(named)[first.variant] > 0  # zero-weight variants are never served


@settings(max_examples=300, deadline=None)
@given(
    key=st.text(max_size=30),
    low=st.integers(0, 10_000),
    raise_by=st.integers(0, 10_000),
)
def test_rollout__raising_weight__never_removes_a_user(key: str, low: int, raise_by: int) -> None:
    high = min(10_000, low + raise_by)

    def served_on(w: int) -> bool:
        rs = _ruleset({"f": _flag_doc("f", [("on", w), ("off", 10_000 - w)])})
        return bool(evaluate(rs, "f", {"targetingKey": key}).variant == "on")

    if served_on(low):
        assert served_on(high)


def _keys(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [f"user-{rnd.getrandbits(64):016x}" for _ in range(n)]


@pytest.mark.parametrize(
    "weights",
    [W3, [("on", 1000), ("off", 9000)], [("a", 1), ("b", 1), ("c", 1), ("d", 1)], [("x", 1)]],
)
def test_rollout__100k_random_keys__shares_within_half_a_point(
    weights: list[tuple[str, int]],
) -> None:
    rs = _ruleset({"f": _flag_doc("f", weights)})
    keys = _keys(100_000, seed=1)
    counts = dict.fromkeys((v for v, _ in weights), 0)
    for k in keys:
        counts[evaluate(rs, "f", {"targetingKey": k}).variant] += 1  # type: ignore[index]
    total = sum(w for _, w in weights)
    for variant, w in weights:
        assert abs(counts[variant] / len(keys) - w / total) < 0.005, (variant, counts)


def test_rollout__two_flags__buckets_independent() -> None:
    keys = _keys(100_000, seed=2)
    table = [[0] * 10 for _ in range(10)]
    for k in keys:
        table[bucket("flag.one", k, 10)][bucket("flag.two", k, 10)] += 1
    _chi2, p_value, _dof, _expected = chi2_contingency(table)
    # Dependent flags (e.g. a shared salt) give p ~ 0; independent ones a p spread over [0, 1].
    assert p_value > 0.001
    # And the test has teeth: the same salt is perfectly dependent.
    same = [[0] * 10 for _ in range(10)]
    for k in keys[:10_000]:
        same[bucket("flag.one", k, 10)][bucket("flag.one", k, 10)] += 1
    assert chi2_contingency(same)[1] < 1e-9


def test_rollout__shared_salt__users_bucketed_together() -> None:
    rs = _ruleset(
        {
            "a": _flag_doc("a", [("on", 10), ("off", 90)], salt="cohort"),
            "b": _flag_doc("b", [("on", 30), ("off", 70)], salt="cohort"),
        }
    )
    for k in _keys(2_000, seed=3):
        if evaluate(rs, "a", {"targetingKey": k}).variant == "on":
            assert evaluate(rs, "b", {"targetingKey": k}).variant == "on"


@settings(max_examples=300, deadline=None)
@given(
    key=st.text(max_size=20),
    salt=st.text(max_size=10),
    weights=st.lists(st.integers(0, 2**20), min_size=1, max_size=5).filter(lambda w: sum(w) > 0),
)
def test_thresholds__any_weights__same_variant_as_choose(
    key: str, salt: str, weights: list[int]
) -> None:
    """Issue 12: the compiled and generated rollouts use bucketing.thresholds/digest; that
    shortcut must pick exactly what the reference arithmetic (bucket, choose) picks."""
    from bisect import bisect_right

    from openfeature_provider.engine.bucketing import thresholds

    assert bisect_right(thresholds(weights), hash32(salt, key)) == choose(salt, key, weights)


def test_exceptions__one_module__hierarchy_and_old_import_paths() -> None:
    from openfeature_provider.engine import (
        EngineError,
        ParseError,
        UnusableBucketValue,
        errors,
        exceptions,
    )

    assert errors.ParseError is exceptions.ParseError is ParseError
    assert issubclass(ParseError, EngineError) and issubclass(UnusableBucketValue, EngineError)
    assert issubclass(exceptions.ValueProblem, ValueError)
    assert issubclass(exceptions.RegexProblem, ValueError)
    for name in ("EngineError", "ParseError", "UnusableBucketValue", "ValueProblem"):
        assert name in (exceptions.__doc__ or "")
