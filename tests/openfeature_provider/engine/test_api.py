"""The engine's public surface: exactly the contract of docs/internals.md, and no Django."""

from __future__ import annotations

import subprocess
import sys

import openfeature_provider.engine as engine

CONTRACT = {
    "parse_ruleset",
    "evaluate",
    "evaluate_all",
    "changed_flag_keys",
    "Ruleset",
    "Resolution",
    "Reason",
    "ErrorCode",
    "ParseError",
    "KINDS",
}


def test_all__every_name__is_importable() -> None:
    missing = [name for name in engine.__all__ if not hasattr(engine, name)]
    assert missing == []


def test_all__compared_with_internals_contract__contains_every_contract_name() -> None:
    assert set(engine.__all__) >= CONTRACT


def test_all__public_module_attributes__are_all_listed() -> None:
    public = {
        name
        for name, value in vars(engine).items()
        if not name.startswith("_") and not isinstance(value, type(engine))
    }
    public.discard("annotations")
    assert public == set(engine.__all__)


def test_import__engine_alone__loads_neither_django_nor_openfeature_sdk() -> None:
    code = (
        "import sys, openfeature_provider.engine as e, openfeature_provider.cli;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('django','openfeature','flagapp')];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_engine_test_modules__imports__never_django_nor_openfeature_sdk() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for directory in ("openfeature_provider/engine", "conformance"):
        for path in (root / directory).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    if name.split(".")[0] in ("django", "openfeature", "flagapp"):
                        offenders.append(f"{path.name}: {name}")
    assert offenders == []
