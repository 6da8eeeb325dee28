"""Every OFREP response shape validates against the protocol's openapi.yaml.

Why: "any OpenFeature client can evaluate against it" holds only if the answers are what the
protocol says. Each shape flagapp produces (every kind, zero values, disabled, prerequisite
failed, null fallthrough, targeting match, split, missing flag, missing targeting key, bad
bodies, bulk, bulk 304) is validated against the vendored ``openapi.yaml`` (the readings of
its inconsistent places are in tests/interop/ofrep_openapi.py), and the deviations the issue
listed are pinned: no DEFAULT reason, ``snapshotVersion`` only in the bulk flag-set metadata,
an array never served as an object value, and ``"variant": null`` kept — with the evidence
that the published Python client fails without it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import ALL_KINDS, bearer, flag_doc
from tests.interop.ofrep_openapi import assert_valid, literal_validator, validator

pytestmark = pytest.mark.django_db

BULK = "/ofrep/v1/evaluate/flags"
FLAGS = {**ALL_KINDS, "demo.list": flag_doc("object", {"l": [1, 2]}, fallthrough="l")}
TK = {"targetingKey": "user-7", "plan": "pro"}

#: (flag, context, expected status): one row per response shape of the single endpoint.
SHAPES: list[tuple[str, Any, int]] = [
    ("demo.bool", TK, 200),
    ("demo.string", TK, 200),
    ("demo.int", TK, 200),
    ("demo.float", TK, 200),
    ("demo.object", TK, 200),
    ("demo.zero", TK, 200),
    ("demo.pro", TK, 200),
    ("demo.pro", {"targetingKey": "u", "plan": "free"}, 200),
    ("demo.split", TK, 200),
    ("demo.off", TK, 200),
    ("demo.gated", TK, 200),
    ("demo.nodefault", TK, 200),
    ("demo.split", {"plan": "pro"}, 400),
    ("demo.list", TK, 400),
    ("no.such-flag", TK, 404),
]


@pytest.fixture
def post(sdk_token: str, install_flags: Callable[..., Any]) -> Callable[..., Any]:
    install_flags(FLAGS, version=6)
    client = Client()

    def send(
        key: str | None, context: Any = None, *, raw: bytes | None = None, **extra: Any
    ) -> Any:
        path = BULK if key is None else f"{BULK}/{key}"
        body = raw if raw is not None else json.dumps({"context": context or {}})
        return client.post(
            path, data=body, content_type="application/json", **bearer(sdk_token), **extra
        )

    return send


@pytest.mark.parametrize(
    ("key", "context", "status"), SHAPES, ids=[f"{k}-{s}" for k, _, s in SHAPES]
)
def test_ofrep_single__every_shape__valid_against_openapi(
    post: Callable[..., Any], key: str, context: Any, status: int
) -> None:
    response = post(key, context)
    assert response.status_code == status
    assert_valid(response.json(), status)


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"{", "PARSE_ERROR"), (b"[]", "PARSE_ERROR"), (b'{"context": 3}', "INVALID_CONTEXT")],
)
def test_ofrep_bad_body__single_and_bulk__valid_failures(
    post: Callable[..., Any], raw: bytes, code: str
) -> None:
    single = post("demo.bool", raw=raw)
    assert single.status_code == 400 and single.json()["errorCode"] == code
    assert_valid(single.json(), 400)
    bulk = post(None, raw=raw)
    assert bulk.status_code == 400 and bulk.json()["errorCode"] == code
    assert_valid(bulk.json(), 400, bulk=True)


def test_ofrep_bulk__every_flag__valid_snapshot_version_in_flag_set_metadata_only(
    post: Callable[..., Any],
) -> None:
    response = post(None, TK)
    assert response.status_code == 200
    body = response.json()
    assert_valid(body, 200, bulk=True)
    assert body["metadata"] == {"snapshotVersion": 6}
    assert {f["key"] for f in body["flags"]} == set(FLAGS)
    for item in body["flags"]:
        assert "snapshotVersion" not in item.get("metadata", {}), item
    again = post(None, TK, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and again.content == b""


def test_ofrep_single__fallthrough_after_rules__unknown_with_flagapp_reason_default(
    post: Callable[..., Any],
) -> None:
    body = post("demo.pro", {"targetingKey": "u", "plan": "free"}).json()
    assert (body["reason"], body["metadata"]["flagappReason"]) == ("UNKNOWN", "DEFAULT")
    assert (body["value"], body["variant"]) == (False, "off")
    nodefault = post("demo.nodefault", TK).json()
    assert "value" not in nodefault and nodefault["variant"] is None
    assert (nodefault["reason"], nodefault["metadata"]["flagappReason"]) == ("UNKNOWN", "DEFAULT")


def test_ofrep_single__object_flag_serving_array__general_failure_not_array(
    post: Callable[..., Any],
) -> None:
    body = post("demo.list", TK).json()
    assert body["errorCode"] == "GENERAL" and "JSON array" in body["errorDetails"]
    assert "value" not in body


def test_ofrep_schema__published_code_default_flag__matches_every_object() -> None:
    """Why reading 1 exists: literally, codeDefaultFlag also matches an answer with a value,
    so the published oneOf rejects a plain string answer; our reading accepts it."""
    answer = {"key": "k", "reason": "STATIC", "variant": "a", "value": "x", "metadata": {}}
    assert not literal_validator("evaluationSuccess").is_valid(answer)
    assert validator("evaluationSuccess").is_valid(answer)
    assert not validator("evaluationSuccess").is_valid({**answer, "variant": None})
    assert not validator("evaluationSuccess").is_valid({**answer, "reason": "DEFAULT"})


class _Canned(BaseHTTPRequestHandler):
    body: dict[str, Any] = {}

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        payload = json.dumps(self.body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[Callable[[dict[str, Any]], Any]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    domain = f"canned-{uuid.uuid4().hex}"
    api.set_provider(OFREPProvider(f"http://127.0.0.1:{server.server_port}"), domain)
    client = api.get_client(domain)

    def ask(body: dict[str, Any]) -> Any:
        _Canned.body = body
        return client.get_boolean_details("f", True, EvaluationContext("u"))

    yield ask
    api.clear_providers()
    server.shutdown()
    server.server_close()


@pytest.mark.django_db(databases=[])
def test_ofrep_python_client__code_default_without_variant__general_error_so_null_kept(
    canned: Callable[[dict[str, Any]], Any],
) -> None:
    """The evidence for ``"variant": null``: openfeature-provider-ofrep 0.3.0 turns an answer
    without ``variant`` (schema-valid) into a GENERAL error, and serves the caller's default
    with the server's reason when ``variant`` is null."""
    omitted = canned({"key": "f", "reason": "DISABLED", "metadata": {}})
    assert omitted.error_code == ErrorCode.GENERAL and omitted.reason == Reason.ERROR
    null = canned({"key": "f", "reason": "DISABLED", "variant": None, "metadata": {}})
    assert (null.value, null.reason, null.error_code, null.variant) == (
        True,
        Reason.DISABLED,
        None,
        None,
    )
