"""flagapp-eval, run as a real subprocess (the installed console script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RULESET = {
    "format": 1,
    "environment": "ci",
    "version": 5,
    "flags": {
        "a.flag": {
            "kind": "boolean",
            "enabled": True,
            "variants": {"on": True, "off": False},
            "rules": [
                {"id": "pro", "when": [{"attr": "plan", "op": "eq", "values": ["pro"]}],
                 "serve": {"variant": "on"}}
            ],
            "fallthrough": {"variant": "off"},
        },
        "b.flag": {"kind": "string", "enabled": False, "variants": {"x": "X"}},
    },
}  # fmt: skip


def _command() -> list[str]:
    script = Path(sys.executable).with_name("flagapp-eval")
    if script.exists():
        return [str(script)]
    found = shutil.which("flagapp-eval")
    return [found] if found else [sys.executable, "-m", "openfeature_provider.cli"]


def run(tmp_path: Path, args: list[str], stdin: str, ruleset: Any = RULESET) -> Any:
    path = tmp_path / "ruleset.json"
    path.write_text(ruleset if isinstance(ruleset, str) else json.dumps(ruleset))
    return subprocess.run(
        [*_command(), "--ruleset", str(path), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_cli__contexts__one_line_per_context_per_flag(tmp_path: Path) -> None:
    proc = run(tmp_path, [], '{"targetingKey": "u1", "plan": "pro"}\n{}\n')
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout) == [
        {"flag": "a.flag", "value": True, "variant": "on", "reason": "TARGETING_MATCH",
         "errorCode": None},
        {"flag": "b.flag", "value": None, "variant": None, "reason": "DISABLED", "errorCode": None},
        {"flag": "a.flag", "value": False, "variant": "off", "reason": "DEFAULT",
         "errorCode": None},
        {"flag": "b.flag", "value": None, "variant": None, "reason": "DISABLED", "errorCode": None},
    ]  # fmt: skip


def test_cli__flag_and_explain__deciding_rule_included(tmp_path: Path) -> None:
    proc = run(tmp_path, ["--flag", "a.flag", "--explain"], '{"plan": "pro"}\n{"plan": "x"}\n')
    assert proc.returncode == 0, proc.stderr
    rows = lines(proc.stdout)
    assert [r["rule"] for r in rows] == ["pro", None]
    assert {r["flag"] for r in rows} == {"a.flag"}


def test_cli__unknown_flag__flag_not_found_lines(tmp_path: Path) -> None:
    proc = run(tmp_path, ["--flag", "nope"], "{}\n")
    assert proc.returncode == 0
    assert lines(proc.stdout)[0]["errorCode"] == "FLAG_NOT_FOUND"


def test_cli__bad_input_lines__reported_with_line_number_and_skipped(tmp_path: Path) -> None:
    proc = run(tmp_path, ["--flag", "a.flag"], '{"plan": "pro"}\nnot json\n\n[1, 2]\n{}\n')
    assert proc.returncode == 1
    assert "line 2: invalid JSON" in proc.stderr
    assert "line 4: a context must be a JSON object" in proc.stderr
    assert [r["variant"] for r in lines(proc.stdout)] == ["on", "off"]


@pytest.mark.parametrize(
    ("ruleset", "message"),
    [
        ({**RULESET, "format": 9}, "$.format: unsupported format 9"),
        ("{not json", "$: invalid JSON"),
        (
            {
                **RULESET,
                "flags": {"x": {"kind": "boolean", "enabled": True, "variants": {"on": 1}}},
            },
            '$.flags["x"].variants["on"]',
        ),
    ],
)
def test_cli__invalid_ruleset__exit_2_with_parse_error(
    tmp_path: Path, ruleset: Any, message: str
) -> None:
    proc = run(tmp_path, [], "{}\n", ruleset=ruleset)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""


def test_cli__missing_file__exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*_command(), "--ruleset", str(tmp_path / "absent.json")],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr


def test_cli__undecodable_or_too_deep_lines__reported_and_run_continues(tmp_path: Path) -> None:
    """Issue 11: no input line may end the run (a traceback used to stop it at the first)."""
    path = tmp_path / "ruleset.json"
    path.write_text(json.dumps(RULESET))
    data = (
        b'{"plan": "\xff"}\n'  # not UTF-8
        + b"[" * 100_000
        + b"]" * 100_000
        + b"\n"  # deeper than the JSON decoder's recursion
        + b'{"plan": "pro", "targetingKey": "\\ud800"}\n'  # valid JSON, lone surrogate
    )
    proc = subprocess.run(
        [*_command(), "--ruleset", str(path), "--flag", "a.flag"],
        input=data,
        capture_output=True,
        timeout=60,
    )
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert "line 1: not valid UTF-8" in stderr
    assert "line 2: invalid JSON: nested too deeply" in stderr
    assert [r["variant"] for r in lines(proc.stdout.decode())] == ["on"]
