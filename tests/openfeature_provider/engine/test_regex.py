"""``matches`` runs in linear time (RE2), keeps Python ``re`` meaning, rejects what RE2 cannot do.

Issue 11, finding 2: the API accepted ``^([a-z0-9]+\\.?)+@example\\.com$``; with Python's
backtracking ``re`` a 24-character input took 1.2 s and doubled per character, so 4 requests
pinned both server workers and ``^(a+)+$`` blocked a provider caller's thread.

Why a subprocess with a timeout: a regex that backtracks exponentially does not return, so a
failing run must end the child, not hang the test session. The time limit is generous (it only
separates "linear" from "never"); the measured time is printed, not asserted (benchmarks hold
performance figures).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openfeature_provider.engine import ParseError, evaluate, parse_ruleset
from openfeature_provider.engine.operators import MAX_MATCH_INPUT_LENGTH

EVIL = [r"^([a-z0-9]+\.?)+@example\.com$", r"^(a+)+$", r"(x+x+)+y", r"^(\w|\d)+$"]


def _ruleset(patterns: list[str], **cond: Any) -> dict[str, Any]:
    return {
        "format": 1,
        "environment": "t",
        "version": 1,
        "flags": {
            f"f{i}": {
                "kind": "boolean",
                "enabled": True,
                "variants": {"on": True, "off": False},
                "rules": [
                    {
                        "id": "r",
                        "when": [{"attr": "a", "op": "matches", "values": [p], **cond}],
                        "serve": {"variant": "on"},
                    }
                ],
                "fallthrough": {"variant": "off"},
            }
            for i, p in enumerate(patterns)
        },
    }


_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from openfeature_provider.engine import evaluate, parse_ruleset
    rs = parse_ruleset(sys.argv[1])
    worst = 0.0
    variants = []
    for text in json.loads(sys.argv[2]):
        for key in rs.flags:
            t0 = time.perf_counter()
            res = evaluate(rs, key, {"a": text})
            worst = max(worst, time.perf_counter() - t0)
            variants.append(res.variant)
    print(json.dumps({"worst": worst, "variants": variants}))
    """
)


@pytest.mark.timeout(120)
def test_matches__catastrophic_patterns_on_10k_inputs__finish_linear_time() -> None:
    n = 10_000
    inputs = [
        "a" * n + "!",
        "a." * (n // 2) + "!",
        "x" * n,  # matches ^(\w|\d)+$ only
        "a" * (MAX_MATCH_INPUT_LENGTH - 1) + "!",  # the longest input the regex ever sees
        "a" * n,  # the one input that matches: ^(a+)+$ and ^(\w|\d)+$
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(_ruleset(EVIL)), json.dumps(inputs)],
        capture_output=True,
        text=True,
        timeout=60,  # exponential backtracking would need longer than the universe's age
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    print(f"worst evaluation on {n}-char inputs: {out['worst'] * 1e3:.2f} ms")
    off4 = ["off"] * 4
    expected = [*off4, *off4, "off", "off", "off", "on", *off4, "off", "on", "off", "on"]
    assert out["variants"] == expected


def test_matches__input_at_bound__still_matched() -> None:
    rs = parse_ruleset(_ruleset([r"^(a+)+$"]))
    assert evaluate(rs, "f0", {"a": "a" * MAX_MATCH_INPUT_LENGTH}).variant == "on"


def test_matches__input_over_bound__unusable_even_negated() -> None:
    """Over the bound the value is unusable: no match, and ``negate`` cannot make it one."""
    long = "a" * (MAX_MATCH_INPUT_LENGTH + 1)
    assert evaluate(parse_ruleset(_ruleset(["a"])), "f0", {"a": long}).variant == "off"
    negated = parse_ruleset(_ruleset(["zzz"], negate=True))
    assert evaluate(negated, "f0", {"a": "abc"}).variant == "on"
    assert evaluate(negated, "f0", {"a": long}).variant == "off"


#: (pattern, case_insensitive, inputs): each must give what Python's re.search gives.
SAME_AS_PYTHON: list[tuple[str, bool, list[str]]] = [
    (
        r"@(corp|staff)\.example$",
        False,
        ["a@corp.example", "a@corp.example.com", "x@staff.example"],
    ),
    (r"^1\.", False, ["1.2", "21.2", "1-2"]),
    (r"b+c", False, ["abbbcd", "ac"]),
    (r"^A", True, ["abc", "Abc", "bA"]),
    (r"(?i)^straße$", False, ["STRASSE", "Straße", "straße"]),
    (r"^a.c$", False, ["abc", "a\nc", "ac"]),
    (r"(?s)^a.c$", False, ["a\nc"]),
    (r"(?m)^b$", False, ["a\nb\nc", "abc"]),
    (r"^\d{3}-\d{4}$", False, ["555-1234", "55-1234"]),
    (r"^[^@\s]+@example\.com$", False, ["me@example.com", "m e@example.com", "@example.com"]),
    (r"(?P<user>\w+)@(?P<host>\w+)", False, ["bob@host", "@"]),
    (r"^\w+$", False, ["abc_123", "abc-1"]),
    (r"colou?r", False, ["color", "colour", "colr"]),
    (r"^(?:v|version-)\d+$", False, ["v12", "version-3", "x1"]),
    (r"\bcat\b", False, ["a cat sat", "concatenate"]),
    (r"^\A[a-f0-9]{8}$", False, ["deadbeef", "DEADBEEF", "deadbee"]),
    (r"^é+$", True, ["ÉÉé", "e"]),
    (r"[.*+?]", False, ["a.b", "ab"]),
    (r"", False, ["", "x"]),
    (r"abc\Z", False, ["abc", "abc\n", "abcd"]),
    (r"abc$", False, ["abc", "abc\n", "abc\n\n", "abcd"]),
    (r"^\d+$", False, ["123", "١٢٣", "12a"]),
    (r"^\w+$", False, ["été", "naïve_1", "a b"]),
    (r"^\s$", False, ["\u00a0", "\u2003", "\v", "x"]),
    (r"^\S+$", False, ["a\u00a0b", "ab"]),
    (r"^[\w.-]+$", False, ["jean-luc.é", "a b"]),
    (r"^a{,2}$", False, ["", "aa", "aaa", "a{,2}"]),
    (r"[[:alpha:]]", False, ["a", ":", "["]),
    (r"^[]a]+$", False, ["]a", "b"]),
    (r"^[\W_]+$", False, ["_-!", "é", "a", " "]),
    (r"^[\s\S]{3,}$", False, ["a\nb", "ab"]),
    (r"^[a\S]$", False, ["a", " ", "\u00a0", "é"]),
    (r"^\u00e9\N{EM DASH}$", False, ["é—", "e-"]),
    (r"^ユーザー\d$", False, ["ユーザー1", "ユーザ1"]),
]


@pytest.mark.parametrize(
    ("pattern", "ci", "inputs"), SAME_AS_PYTHON, ids=[p for p, _, _ in SAME_AS_PYTHON]
)
def test_matches__python_re_pattern__same_answer_as_re_search(
    pattern: str, ci: bool, inputs: list[str]
) -> None:
    rs = parse_ruleset(_ruleset([pattern], case_insensitive=ci))
    flags = re.IGNORECASE if ci else 0
    for text in inputs:
        expected = re.search(pattern, text, flags) is not None
        got = evaluate(rs, "f0", {"a": text}).variant == "on"
        assert got == expected, (pattern, text)


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        (r"^(?=.*\d)\w+$", "lookaround"),
        (r"^(?!admin)", "lookaround"),
        (r"(?<=@)example", "lookaround"),
        (r"(?<!x)y", "lookaround"),
        (r"(a)\1", "backreference"),
        (r"(?P<x>a)(?P=x)", "backreference"),
        (r"a++", "possessive"),
        (r"a*+b", "possessive"),
        (r"(?>ab)", "atomic"),
        (r"(a)?(?(1)b|c)", "conditional"),
        (r"[^\W_]", r"\W or \S inside a negated character class"),
        (r"(?x) a b", "RE2"),
        (r"a{1001}", "RE2"),
    ],
)
def test_parse__regex_construct_re2_lacks__parse_error_with_path(
    pattern: str, fragment: str
) -> None:
    doc = _ruleset(["^ok$"])
    doc["flags"]["f0"]["rules"][0]["when"][0]["values"].append(pattern)
    with pytest.raises(ParseError) as info:
        parse_ruleset(doc)
    assert info.value.path == '$.flags["f0"].rules[0].when[0].values[1]'
    assert fragment in info.value.message


def test_parse__regex_with_lone_surrogate__parse_error_with_path() -> None:
    with pytest.raises(ParseError) as info:
        parse_ruleset(_ruleset(["a\ud800"]))
    assert info.value.path == '$.flags["f0"].rules[0].when[0].values[0]'


def test_matches__attribute_with_lone_surrogate__unusable_no_error() -> None:
    rs = parse_ruleset(_ruleset(["a"], negate=True))
    res = evaluate(rs, "f0", {"a": "a\ud800"})
    assert (res.variant, res.error_code) == ("off", None)


_ATOMS = st.sampled_from(
    ["a", "b", "é", ".", r"\d", r"\D", r"\w", r"\W", r"\s", r"\S", "[ab]", "[^a]", r"[\d.]",
     r"[\w-]", r"[\s_]", "[é-ü]", r"\.", "_", "-", "1", "٣", " ", r"[\W_]", r"[a\S]", r"[\s\S]"]
)  # fmt: skip
_QUANT = st.sampled_from(["", "", "*", "+", "?", "{1,2}", "{,2}", "*?", "+?"])


@st.composite
def _patterns(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()) and parts:
            parts = [f"(?:{''.join(parts)}|{draw(_ATOMS)})"]
        parts.append(draw(_ATOMS) + draw(_QUANT))
    body = "".join(parts)
    start = draw(st.sampled_from(["", "^", r"\A"]))
    end = draw(st.sampled_from(["", "$", r"\Z"]))
    return start + body + end


@settings(max_examples=300, deadline=None)
@given(
    pattern=_patterns(),
    texts=st.lists(st.text(alphabet="ab1é٣ü\n._- \u00a0\u2003E", max_size=8), max_size=6),
    ci=st.booleans(),
)
def test_matches__generated_python_pattern__same_answer_as_re_search(
    pattern: str, texts: list[str], ci: bool
) -> None:
    """The translation keeps Python's meaning for the constructs RE2 can run."""
    rs = parse_ruleset(_ruleset([pattern], case_insensitive=ci))
    for text in texts:
        expected = re.search(pattern, text, re.IGNORECASE if ci else 0) is not None
        got = evaluate(rs, "f0", {"a": text}).variant == "on"
        assert got == expected, (pattern, text, ci)
