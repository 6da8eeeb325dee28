"""Limits before work on the SDK, OFREP and events endpoints (issue 10, item 7).

Why: the server used to read a 300 MB body before it even looked at the key, and a request
nested 5,000 levels deep answered 500 (Python's parser raises RecursionError). A body cap
is checked from ``Content-Length`` before the body is read and before the key is looked up
(a flood of big bodies with bad keys costs nothing), chunked bodies are capped while they
are read (ASGI fast path), and any JSON too deep is a JSON 400.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, override_settings

from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import ALL_KINDS, bearer

pytestmark = pytest.mark.django_db

OFREP = "/ofrep/v1/evaluate/flags/demo.bool"
BULK = "/ofrep/v1/evaluate/flags"
EVENTS = "/sdk/v1/events"
BAD_KEY = "fa_production_XXXXXXXXxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def _deep(levels: int) -> bytes:
    return b'{"context": {"a": ' + b"[" * levels + b"]" * levels + b"}}"


@pytest.mark.parametrize(
    ("path", "setting"),
    [
        (OFREP, "SDK_MAX_BODY_BYTES"),
        (BULK, "SDK_MAX_BODY_BYTES"),
        (EVENTS, "EVENTS_MAX_BODY_BYTES"),
    ],
)
def test_sdk_post__content_length_over_cap__413_before_the_key_is_looked_up(
    client: Client, environments: Any, django_assert_num_queries: Any, path: str, setting: str
) -> None:
    body = b'{"context": {"pad": "' + b"x" * 2000 + b'"}, "events": []}'
    with override_settings(FLAGAPP={setting: 1000}), django_assert_num_queries(0):
        response = client.post(path, data=body, content_type="application/json", **bearer(BAD_KEY))
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert setting in json.dumps(response.json())


@pytest.mark.parametrize("path", [OFREP, BULK, EVENTS])
def test_sdk_post__json_5000_levels_deep__json_400_not_500(
    client: Client, sdk_token: str, install_flags: Callable[..., Any], path: str
) -> None:
    install_flags(ALL_KINDS)
    body = _deep(5000) if path != EVENTS else b'{"events": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = client.post(path, data=body, content_type="application/json", **bearer(sdk_token))
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "deep" in json.dumps(response.json())


@pytest.mark.parametrize("path", [OFREP, BULK])
def test_ofrep__context_deeper_than_bound__400_invalid_context_naming_field(
    client: Client, sdk_token: str, install_flags: Callable[..., Any], path: str
) -> None:
    install_flags(ALL_KINDS)
    with override_settings(FLAGAPP={"SDK_JSON_MAX_DEPTH": 10}):
        response = client.post(
            path, data=_deep(20), content_type="application/json", **bearer(sdk_token)
        )
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == "INVALID_CONTEXT"
    assert "context.a" in body["errorDetails"]


def _raw_http(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_asgi_fast_path__declared_300_mb_body__413_without_reading_it(
    asgi_server: Any, environments: Any
) -> None:
    """Only the headers are sent: a server that waits for the body never answers."""
    head = (
        f"POST {OFREP} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {BAD_KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: 314572800\r\n\r\n"
    ).encode()
    answer = _raw_http(asgi_server.port, head + b'{"context": {')
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/json" in answer


def test_asgi_fast_path__chunked_body_over_cap__413_while_reading(
    asgi_server: Any, environments: Any
) -> None:
    head = (
        f"POST {EVENTS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {BAD_KEY}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20))  # 1.25 MiB
    with override_settings(FLAGAPP={"EVENTS_MAX_BODY_BYTES": 100_000}):
        answer = _raw_http(asgi_server.port, head + chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_management_api__json_5000_levels_deep__400_not_500(admin_user: Any) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    body = b'{"key": "qa", "name": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = client.post(
        "/api/v1/environments/",
        data=body,
        content_type="application/json",
        HTTP_X_CHANGE_REASON="limits test",
    )
    assert response.status_code == 400
    assert "deep" in json.dumps(response.json())
