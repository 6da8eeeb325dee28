"""The published Node OFREP clients answer what FlagappProvider answers (issue 15, part 4).

Why: the same case table as test_ofrep_agreement.py, this time through
``@openfeature/ofrep-provider`` + ``@openfeature/server-sdk`` (``evaluate.cjs``) and through
``@openfeature/ofrep-web-provider`` + ``@openfeature/web-sdk`` (``evaluate-web.cjs``, with a
client-side key, as a page uses it) -- npm packages pinned by
``tests/interop/node/package.json`` and its lockfile, installed with ``npm ci`` into a cache
directory keyed by the lockfile's hash -- in a ``node`` process, against ``live_server`` (a
real HTTP server on 127.0.0.1). Differences from FlagappProvider must be exactly those in
``NODE_PROTOCOL`` / ``WEB_PROTOCOL`` (each with its reason; docs/interop.md has the table).
Skipped, with that reason, only when ``node``/``npm`` are not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from typing import Any

import pytest
from openfeature import api

from flagapp.services import sdk_keys
from openfeature_provider import FlagappProvider
from openfeature_provider.sources import InMemorySource
from tests.flagapp.eval_helpers import ruleset_doc
from tests.flagapp.sdk.test_ofrep_agreement import CASES, FLAGS, PROTOCOL, VERSION, _ask
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.interop.node_clients import NODE_DIR, node_available, node_modules

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not node_available(),
        reason="node/npm not installed: the Node OFREP client cannot run",
    ),
]


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


#: case -> {field: reason}: what the web provider (0.4.3, with a client-side key) answers
#: differently, and why. It evaluates from the bulk answer it cached for the context, so the
#: single-answer differences of the server clients (type mismatch, missing targeting key) do
#: not arise: a bulk item's failure carries the flag's metadata and the SDK reports it.
WEB_PROTOCOL: dict[str, dict[str, str]] = {
    "missing flag": {
        "flag_metadata": "the web provider answers a flag absent from its cached bulk answer "
        "with FLAG_NOT_FOUND and the bulk answer's flag-set metadata ({snapshotVersion}) as "
        "flag metadata (ofrep-web-provider 0.4.3, by design); value, reason and error code agree"
    },
    "fallthrough after rules": PROTOCOL["fallthrough after rules"],
    "null fallthrough": PROTOCOL["null fallthrough"],
    "prerequisite failed": PROTOCOL["prerequisite failed"],
    "object holding an array": PROTOCOL["object holding an array"],
}


def _run_node(script: str, base_url: str, token: str) -> dict[str, Any]:
    target = node_modules()
    shutil.copy(NODE_DIR / script, target / script)
    request = {
        "baseUrl": base_url,
        "token": token,
        "cases": [
            {"name": n, "key": k, "kind": kind, "default": d, "context": c}
            for n, k, kind, d, c in CASES
        ],
    }
    run = subprocess.run(
        ["node", script],
        cwd=target,
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return {a["name"]: a for a in json.loads(run.stdout)}


def _flagapp_answers() -> dict[str, Any]:
    domain = f"local-{uuid.uuid4().hex}"
    provider = FlagappProvider(
        source=InMemorySource(ruleset_doc(FLAGS, version=VERSION)), send_events=False
    )
    api.set_provider_and_wait(provider, domain)
    try:
        client = api.get_client(domain)
        return {case[0]: _ask(client, case) for case in CASES}
    finally:
        api.clear_providers()
        provider.shutdown()


def _differences(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
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
    return differences


@pytest.mark.parametrize(
    ("script", "scope", "listed", "identical"),
    [
        pytest.param("evaluate.cjs", "server", NODE_PROTOCOL, 13, id="ofrep-provider"),
        pytest.param("evaluate-web.cjs", "client", WEB_PROTOCOL, 15, id="ofrep-web-provider"),
    ],
)
def test_ofrep_node_client__case_table__equal_to_flagapp_provider_except_listed(
    live_server: Any,
    environments: Any,
    install_flags: Any,
    script: str,
    scope: str,
    listed: dict[str, dict[str, str]],
    identical: int,
) -> None:
    install_flags(FLAGS, version=VERSION)
    _, token = sdk_keys.create_sdk_key(
        "production", name="node-agreement", scope=scope, actor=None, reason="tests"
    )
    theirs = _run_node(script, live_server.url, token)
    differences = _differences(_flagapp_answers(), theirs)
    unexplained = {n: d for n, d in differences.items() if set(d[0]) - set(listed.get(n, {}))}
    assert not unexplained, unexplained
    vanished = set(listed) - set(differences)
    assert not vanished, f"listed differences no longer seen: {vanished}"
    assert len(CASES) - len(differences) == identical  # of 20; the rest listed
