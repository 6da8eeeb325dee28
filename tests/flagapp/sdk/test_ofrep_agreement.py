"""The published Python OFREP client answers what FlagappProvider answers (issue 15, part 4).

Why: "any OpenFeature client can evaluate against it" is measured, not assumed. One case table
(every kind, zero values, missing flag, targeting match, split, disabled, null fallthrough,
prerequisite failed, type mismatch, missing targeting key, fallthrough after rules, an object
flag holding an array) is evaluated twice with the same ruleset: in process by
``FlagappProvider`` and over HTTP by ``openfeature-provider-ofrep`` (the published client,
through the real OpenFeature SDK) against ``live_server`` (a real threaded HTTP server on
127.0.0.1). The answers — value, variant, reason, error code, flag metadata — must be equal
except where ``PROTOCOL`` lists a difference the protocol makes unavoidable, with its reason
(the same list is in docs/interop.md). A new difference, or a listed one that disappears,
fails. The bulk endpoint (which this client does not use) is compared flag by flag, with its
ETag round trip.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationDetails

from flagapp.services import sdk_keys
from openfeature_provider import FlagappProvider
from openfeature_provider.sources import InMemorySource
from tests.flagapp.eval_helpers import ruleset_doc
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import ALL_KINDS, flag_doc
from tests.interop.ofrep_openapi import assert_valid

pytestmark = pytest.mark.django_db(transaction=True)

VERSION = 5
FLAGS: dict[str, Any] = {
    **ALL_KINDS,
    "zero.bool": flag_doc("boolean", {"f": False}, fallthrough="f"),
    "zero.string": flag_doc("string", {"e": ""}, fallthrough="e"),
    "zero.float": flag_doc("float", {"z": 0.0}, fallthrough="z"),
    "zero.object": flag_doc("object", {"e": {}}, fallthrough="e"),
    "demo.list": flag_doc("object", {"l": [1, 2]}, fallthrough="l"),
}
PRO = {"targetingKey": "user-7", "plan": "pro"}

#: (case, flag, kind asked, default, context)
CASES: list[tuple[str, str, str, Any, dict[str, Any]]] = [
    ("boolean", "demo.bool", "boolean", False, PRO),
    ("string", "demo.string", "string", "x", PRO),
    ("integer", "demo.int", "integer", 1, PRO),
    ("float", "demo.float", "float", 9.5, PRO),
    ("object", "demo.object", "object", {"d": 1}, PRO),
    ("zero integer", "demo.zero", "integer", 7, PRO),
    ("zero boolean", "zero.bool", "boolean", True, PRO),
    ("zero string", "zero.string", "string", "x", PRO),
    ("zero float", "zero.float", "float", 9.5, PRO),
    ("zero object", "zero.object", "object", {"d": 1}, PRO),
    ("missing flag", "no.such-flag", "boolean", True, PRO),
    ("targeting match", "demo.pro", "boolean", False, PRO),
    ("fallthrough after rules", "demo.pro", "boolean", True, {"targetingKey": "u", "plan": "x"}),
    ("split", "demo.split", "boolean", False, PRO),
    ("disabled", "demo.off", "boolean", True, PRO),
    ("null fallthrough", "demo.nodefault", "boolean", True, PRO),
    ("prerequisite failed", "demo.gated", "boolean", True, PRO),
    ("type mismatch", "demo.bool", "string", "fallback", PRO),
    ("missing targeting key", "demo.split", "boolean", True, {"plan": "pro"}),
    ("object holding an array", "demo.list", "object", {"d": 1}, PRO),
]

_FALLTHROUGH = (
    "reason DEFAULT is outside OFREP's success-reason enum (STATIC, TARGETING_MATCH, SPLIT, "
    "DISABLED, UNKNOWN): sent as UNKNOWN, the engine's reason in metadata.flagappReason"
)
#: case -> {field: reason}: the differences the protocol makes unavoidable.
PROTOCOL: dict[str, dict[str, str]] = {
    "fallthrough after rules": {"reason": _FALLTHROUGH, "flag_metadata": _FALLTHROUGH},
    "null fallthrough": {"reason": _FALLTHROUGH, "flag_metadata": _FALLTHROUGH},
    "prerequisite failed": {
        "reason": "PREREQUISITE_FAILED is not an OpenFeature reason; sent as DISABLED (the "
        "caller's default is served either way), the engine's reason in metadata.flagappReason",
        "flag_metadata": "metadata.flagappReason = PREREQUISITE_FAILED",
    },
    "type mismatch": {
        "flag_metadata": "an OFREP request carries no type, so the client detects the mismatch "
        "itself and raises TYPE_MISMATCH; the SDK's error path then reports no flag metadata, "
        "while FlagappProvider reports the flag's (value, reason ERROR and code agree)"
    },
    "missing targeting key": {
        "flag_metadata": "an OFREP error answer (400 TARGETING_KEY_MISSING) reaches the client "
        "as an exception, and the SDK's error path reports no flag metadata (value, reason "
        "ERROR and code agree)"
    },
    "object holding an array": {
        field: "an OFREP object value is a JSON object (objectFlag): an array is a GENERAL "
        "failure and the client serves its default; in process the array is served"
        for field in ("value", "variant", "reason", "error_code", "flag_metadata")
    },
}
#: Dropped from every comparison: the in-process snapshotVersion is flag-set metadata in
#: OFREP (bulk ``metadata``), kept out of per-flag metadata so a change event names only the
#: flags that changed; error messages are free text (codes are compared).
_IN_PROCESS_ONLY = ("snapshotVersion",)


def _answer(details: FlagEvaluationDetails[Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in dict(details.flag_metadata).items() if k not in _IN_PROCESS_ONLY}
    return {
        "value": details.value,
        "value_type": type(details.value).__name__,
        "variant": details.variant,
        "reason": str(getattr(details.reason, "value", details.reason)),
        "error_code": getattr(details.error_code, "value", details.error_code),
        "flag_metadata": metadata,
    }


def _ask(client: OpenFeatureClient, case: tuple[str, str, str, Any, dict[str, Any]]) -> Any:
    _name, key, kind, default, ctx = case
    attrs = {k: v for k, v in ctx.items() if k != "targetingKey"}
    context = EvaluationContext(ctx.get("targetingKey"), attrs)
    return _answer(getattr(client, f"get_{kind}_details")(key, default, context))


@pytest.fixture
def clients(
    live_server: Any, environments: Any, install_flags: Callable[..., Any]
) -> Iterator[tuple[OpenFeatureClient, OpenFeatureClient, str]]:
    install_flags(FLAGS, version=VERSION)
    _, token = sdk_keys.create_sdk_key("production", name="agreement", actor=None, reason="tests")
    remote, local = f"ofrep-{uuid.uuid4().hex}", f"local-{uuid.uuid4().hex}"
    headers = {"Authorization": f"Bearer {token}"}
    api.set_provider(OFREPProvider(live_server.url, headers_factory=lambda: headers), remote)
    provider = FlagappProvider(
        source=InMemorySource(ruleset_doc(FLAGS, version=VERSION)), send_events=False
    )
    api.set_provider_and_wait(provider, local)
    yield api.get_client(remote), api.get_client(local), token
    api.clear_providers()
    provider.shutdown()


def test_ofrep_python_client__case_table__equal_to_flagapp_provider_except_protocol(
    clients: tuple[OpenFeatureClient, OpenFeatureClient, str],
) -> None:
    remote, local, _token = clients
    agreed, differences = 0, {}
    for case in CASES:
        theirs, ours = _ask(remote, case), _ask(local, case)
        fields = {f for f in ours if ours[f] != theirs[f]}
        fields.discard("value_type") if "value" in fields else None
        if fields:
            differences[case[0]] = (sorted(fields), ours, theirs)
        else:
            agreed += 1
    unexplained = {
        name: diff
        for name, diff in differences.items()
        if set(diff[0]) - set(PROTOCOL.get(name, {}))
    }
    assert not unexplained, {
        n: (d[0], d[1]["flag_metadata"], d[2]["flag_metadata"]) for n, d in unexplained.items()
    }
    vanished = set(PROTOCOL) - set(differences)
    assert not vanished, f"listed protocol differences no longer seen: {vanished}"
    assert agreed == len(CASES) - len(PROTOCOL)  # 14 of 20 identical; 6 listed


def test_ofrep_bulk__every_flag__equal_to_single_answers_and_etag_304(
    live_server: Any, clients: tuple[OpenFeatureClient, OpenFeatureClient, str]
) -> None:
    """The bulk endpoint (used by the web and static-context providers) answers each flag as
    the single endpoint does, carries ``snapshotVersion`` as flag-set metadata, and honours
    ``If-None-Match``."""
    _remote, _local, token = clients

    def post(path: str, body: Any, **headers: str) -> tuple[int, dict[str, str], Any]:
        request = urllib.request.Request(
            f"{live_server.url}/ofrep/v1/evaluate/flags{path}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            | headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, dict(response.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, dict(exc.headers), json.loads(raw) if raw else None

    status, headers, bulk = post("", {"context": PRO})
    assert status == 200
    assert_valid(bulk, 200, bulk=True)
    assert bulk["metadata"] == {"snapshotVersion": VERSION}
    for item in bulk["flags"]:
        single_status, _h, single = post(f"/{item['key']}", {"context": PRO})
        assert single == item, (single_status, single, item)
    status, _h, body = post("", {"context": PRO}, **{"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, None)
