"""Context values no C extension may see: lone surrogates (issue 11, finding 1).

JSON ``"\\ud800"`` decodes to a ``str`` holding an unpaired surrogate. mmh3 5.3.1 segfaulted
when it hashed such a string, so one OFREP request killed a server worker and
``FlagappProvider`` / ``flagapp-eval`` died with exit code 139. Bucketing now hashes UTF-8
bytes; a value that has no UTF-8 form is an unusable bucket value (INVALID_CONTEXT, the
caller's default).

Why a subprocess: a segfault in the test process would end the whole run instead of failing
one test. Each case runs in a child and the test asserts the child was not killed by a signal.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from openfeature_provider.engine import ErrorCode, evaluate, parse_ruleset
from openfeature_provider.engine.bucketing import UnusableBucketValue, hash32
from tests.openfeature_provider.engine.test_cli import _command

WEIGHTS2 = [{"variant": "on", "weight": 25}, {"variant": "off", "weight": 75}]
WEIGHTS3 = [
    {"variant": "on", "weight": 50},
    {"variant": "off", "weight": 25},
    {"variant": "x", "weight": 25},
]
VARIANTS = {"on": "ON", "off": "OFF", "x": "X"}


def _flag(serve: dict[str, Any], *, in_rule: bool) -> dict[str, Any]:
    flag: dict[str, Any] = {"kind": "string", "enabled": True, "variants": VARIANTS}
    if in_rule:
        flag["rules"] = [{"id": "r1", "when": [{"attr": "plan", "op": "exists"}], "serve": serve}]
    else:
        flag["fallthrough"] = serve
    return flag


#: Every shape the compiler and the code generator treat differently: closures (fallthrough
#: only), inlined generated code (inside a rule), two/three/one variants, nested bucket_by.
RULESET: dict[str, Any] = {
    "format": 1,
    "environment": "t",
    "version": 1,
    "flags": {
        f"{where}.{shape}": _flag({"rollout": rollout}, in_rule=where == "rule")
        for where in ("tail", "rule")
        for shape, rollout in {
            "two": {"weights": WEIGHTS2},
            "three": {"weights": WEIGHTS3},
            "one": {"weights": [{"variant": "on", "weight": 1}]},
            "nested": {"weights": WEIGHTS2, "bucket_by": "user.id"},
            "nested3": {"weights": WEIGHTS3, "bucket_by": "user.id"},
            "attr": {"weights": WEIGHTS3, "bucket_by": "org"},
        }.items()
    },
}

#: The contexts as JSON text, exactly as OFREP and flagapp-eval receive them.
CONTEXTS = [
    '{"targetingKey": "\\ud800", "plan": "p", "org": "\\udfff", "user": {"id": "\\ud800"}}',
    '{"targetingKey": "a\\udc80b", "plan": "p", "org": "x\\ud83d", "user": {"id": "\\ud83dz"}}',
]

_CHILD = textwrap.dedent(
    """
    import json, sys
    from openfeature_provider.engine import evaluate, parse_ruleset
    rs = parse_ruleset(sys.argv[1])
    out = []
    for text in json.loads(sys.argv[2]):
        ctx = json.loads(text)
        for key, flag in rs.flags.items():
            # evaluate() and the compiled function the provider calls directly
            for res in (evaluate(rs, key, ctx), flag.compiled(ctx)):
                out.append([key, res.use_default, res.reason, res.error_code, res.rule_id])
    print(json.dumps(out))
    """
)


def _run_child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


def test_evaluate__lone_surrogate_bucket_value__invalid_context_not_a_crash() -> None:
    proc = _run_child(_CHILD, json.dumps(RULESET), json.dumps(CONTEXTS))
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    assert len(rows) == 2 * 2 * len(RULESET["flags"])
    for key, use_default, reason, code, rule_id in rows:
        assert (use_default, reason, code) == (True, "ERROR", ErrorCode.INVALID_CONTEXT), key
        assert rule_id == ("r1" if key.startswith("rule.") else None), key


def test_evaluate__valid_non_ascii_bucket_value__still_bucketed() -> None:
    """The guard must not turn real Unicode (astral planes, combining marks) into errors."""
    rs = parse_ruleset(RULESET)
    ctx = {"targetingKey": "ユーザー😀", "plan": "p", "org": "é", "user": {"id": "e\u0301"}}
    for key in rs.flags:
        res = evaluate(rs, key, ctx)
        assert not res.use_default and res.reason == "SPLIT", (key, res)


def test_hash32__lone_surrogate__unusable_bucket_value_error() -> None:
    proc = _run_child(
        "from openfeature_provider.engine.bucketing import hash32, UnusableBucketValue\n"
        "try:\n    hash32('salt', '\\ud800')\nexcept UnusableBucketValue:\n    print('ok')\n"
    )
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}"
    assert proc.stdout.strip() == "ok", proc.stderr
    with pytest.raises(UnusableBucketValue):
        hash32("s", "\udfff")
    assert issubclass(UnusableBucketValue, ValueError)


def test_parse__salt_not_encodable__parse_error_names_path() -> None:
    from openfeature_provider.engine import ParseError

    doc = json.loads(json.dumps(RULESET))
    doc["flags"]["tail.two"]["fallthrough"]["rollout"]["salt"] = "\ud800"
    with pytest.raises(ParseError) as info:
        parse_ruleset(doc)
    assert info.value.path == '$.flags["tail.two"].fallthrough.rollout.salt'


def test_parse__flag_key_not_encodable__parse_error_names_path() -> None:
    from openfeature_provider.engine import ParseError

    doc = json.loads(json.dumps(RULESET))
    doc["flags"]["x\ud800"] = doc["flags"]["tail.two"]
    with pytest.raises(ParseError) as info:
        parse_ruleset(doc)
    assert info.value.path.startswith("$.flags[")
    assert "UTF-8" in info.value.message


def test_cli__lone_surrogate_context__line_evaluated_process_survives(tmp_path: Path) -> None:
    path = tmp_path / "ruleset.json"
    path.write_text(json.dumps(RULESET))
    proc = subprocess.run(
        [*_command(), "--ruleset", str(path), "--explain"],
        input="\n".join(CONTEXTS) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 2 * len(RULESET["flags"])
    assert {r["errorCode"] for r in rows} == {ErrorCode.INVALID_CONTEXT}


def test_evaluate__surrogate_in_matched_attribute__condition_unusable_not_error() -> None:
    """Other operators meet the same strings: they never match, and never raise."""
    ops: list[tuple[str, list[Any]]] = [
        ("eq", ["a"]),
        ("contains", ["a"]),
        ("starts_with", ["a"]),
        ("matches", ["^a"]),
        ("semver_gt", ["1.0.0"]),
        ("before", ["2030-01-01T00:00:00+00:00"]),
        ("in_cidr", ["10.0.0.0/8"]),
    ]
    flags = {
        op: {
            "kind": "boolean",
            "enabled": True,
            "variants": {"on": True, "off": False},
            "rules": [{"id": "r", "when": [{"attr": "a", "op": op, "values": values}],
                       "serve": {"variant": "on"}}],
            "fallthrough": {"variant": "off"},
        }
        for op, values in ops
    }  # fmt: skip
    rs = parse_ruleset({"format": 1, "environment": "t", "version": 1, "flags": flags})
    for op, _ in ops:
        res = evaluate(rs, op, {"a": "a\ud800"})
        assert res.error_code is None, (op, res.error_message)
        assert res.variant in ("on", "off")


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["flags"]["s"]["variants"].update(x="a\ud800"), '$.flags["s"].variants["x"]'),
        (lambda d: d["flags"]["s"]["variants"].update({"\udfff": "v"}),
         '$.flags["s"].variants["\\udfff"]'),
        (lambda d: d["flags"]["o"]["variants"].update(x={"k": ["\ud800"]}),
         '$.flags["o"].variants["x"]["k"][0]'),
        (lambda d: d["flags"]["o"]["variants"].update(x={"\ud800": 1}),
         '$.flags["o"].variants["x"]'),
        (lambda d: d["flags"]["s"].update(metadata={"owner": "\ud800"}),
         '$.flags["s"].metadata["owner"]'),
    ],
)  # fmt: skip
def test_parse__served_text_not_encodable__parse_error_with_path(mutate: Any, path: str) -> None:
    """Whatever is served (variant names and values, metadata) must have a UTF-8 form, or
    every response carrying it fails to encode (a 500 in OFREP, a crash in flagapp-eval)."""
    from openfeature_provider.engine import ParseError

    doc: dict[str, Any] = {
        "format": 1,
        "environment": "t",
        "version": 1,
        "flags": {
            "s": {"kind": "string", "enabled": True, "variants": {"v": "V"}},
            "o": {"kind": "object", "enabled": True, "variants": {"v": {}}},
        },
    }
    mutate(doc)
    with pytest.raises(ParseError) as info:
        parse_ruleset(doc)
    assert info.value.path == path
    assert "lone surrogate" in info.value.message
