"""The published Node OFREP client answers what FlagappProvider answers (issue 15, part 4).

Why: the same case table as test_ofrep_agreement.py, this time through
``@openfeature/ofrep-provider`` + ``@openfeature/server-sdk`` (npm packages pinned by
``tests/interop/node/package.json`` and its lockfile, installed with ``npm ci`` into a cache
directory keyed by the lockfile's hash) in a ``node`` process, against ``live_server`` (a real
HTTP server on 127.0.0.1). Differences from FlagappProvider must be exactly those in
``NODE_PROTOCOL`` (each with its reason; docs/interop.md has the table). Skipped, with that
reason, only when ``node``/``npm`` are not installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from openfeature import api

from flagapp.sdk import keys
from openfeature_provider import FlagappProvider
from openfeature_provider.sources import InMemorySource
from tests.flagapp.eval_helpers import ruleset_doc
from tests.flagapp.sdk.test_ofrep_agreement import CASES, FLAGS, PROTOCOL, VERSION, _ask
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        shutil.which("node") is None or shutil.which("npm") is None,
        reason="node/npm not installed: the Node OFREP client cannot run",
    ),
]

NODE_DIR = Path(__file__).resolve().parents[2] / "interop" / "node"

_NO_CODE_DEFAULT = (
    "@openfeature/ofrep-provider 0.1.3 (the newest on the registry) predates OFREP's optional "
    "value (ADR-0006): it compares typeof value with typeof default and throws for an answer "
    "without value, which the SDK reports as reason ERROR, GENERAL, no metadata; the value "
    "served is the caller's default either way"
)
#: case -> {field: reason}: what the Node client answers differently, and why.
NODE_PROTOCOL: dict[str, dict[str, str]] = {
    **{
        name: dict.fromkeys(("reason", "error_code", "flag_metadata"), _NO_CODE_DEFAULT)
        for name in ("disabled", "null fallthrough", "prerequisite failed")
    },
    "fallthrough after rules": PROTOCOL["fallthrough after rules"],
    "type mismatch": PROTOCOL["type mismatch"],
    "missing targeting key": PROTOCOL["missing targeting key"],
    "object holding an array": PROTOCOL["object holding an array"],
}


def _node_modules() -> Path:
    """``npm ci`` of the committed lockfile, once per lockfile content."""
    lock = (NODE_DIR / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (NODE_DIR / "package.json").read_bytes()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    target = base / "flagapp-ofrep-node" / digest
    if not (target / "node_modules" / ".package-lock.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(NODE_DIR / name, target / name)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=target,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return target


def test_ofrep_node_client__case_table__equal_to_flagapp_provider_except_listed(
    live_server: Any, environments: Any, install_flags: Any
) -> None:
    install_flags(FLAGS, version=VERSION)
    _, token = keys.create_sdk_key("production", name="node-agreement")
    target = _node_modules()
    shutil.copy(NODE_DIR / "evaluate.cjs", target / "evaluate.cjs")
    request = {
        "baseUrl": live_server.url,
        "token": token,
        "cases": [
            {"name": n, "key": k, "kind": kind, "default": d, "context": c}
            for n, k, kind, d, c in CASES
        ],
    }
    run = subprocess.run(
        ["node", "evaluate.cjs"],
        cwd=target,
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    theirs = {a["name"]: a for a in json.loads(run.stdout)}

    domain = f"local-{uuid.uuid4().hex}"
    provider = FlagappProvider(
        source=InMemorySource(ruleset_doc(FLAGS, version=VERSION)), send_events=False
    )
    api.set_provider_and_wait(provider, domain)
    try:
        client = api.get_client(domain)
        ours = {case[0]: _ask(client, case) for case in CASES}
    finally:
        api.clear_providers()
        provider.shutdown()

    differences = {}
    for name, mine in ours.items():
        other = theirs[name]
        # JavaScript has one number type (JSON 1.0 prints as 1): values compare as numbers.
        fields = {
            f
            for f in ("value", "variant", "reason", "error_code", "flag_metadata")
            if mine[f] != other[f]
        }
        if fields:
            differences[name] = (sorted(fields), mine, other)
    unexplained = {
        n: d for n, d in differences.items() if set(d[0]) - set(NODE_PROTOCOL.get(n, {}))
    }
    assert not unexplained, unexplained
    vanished = set(NODE_PROTOCOL) - set(differences)
    assert not vanished, f"listed differences no longer seen: {vanished}"
    assert len(CASES) - len(differences) == 13  # of 20 identical; 7 listed
