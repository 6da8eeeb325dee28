"""Issue 10, finding 7: limits apply before work.

Before: the server read a 300 MB body before checking the key; 5,000-level JSON was a 500;
a weight of 10^400 was accepted and published (breaking int64/JavaScript clients and
flagd). Real uvicorn workers, raw sockets for the oversized body: the client sends only the
headers (``Content-Length: 314572800``) and waits — a server that answers 413 at once never
needed the body.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest

from .figures import FIGURES
from .helpers import FLAG, STATE_PATH, ruleset_enabled, state

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.redis]

HUGE = 300 * 1024 * 1024


@pytest.fixture
def limits_server(shared: Any) -> tuple[Any, Any]:
    """The shared deployment: these tests refuse input and must change nothing."""
    return shared  # type: ignore[no-any-return]


def _headers_only(port: int, path: str, auth: str) -> tuple[int, float]:
    """POST ``path`` announcing a 300 MB body and send none of it: (status, seconds)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {HUGE}\r\n\r\n"
            ).encode()
        )
        s.settimeout(10)
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, time.monotonic() - start


@pytest.mark.parametrize(
    "path",
    ["/sdk/v1/events", f"/ofrep/v1/evaluate/flags/{FLAG}", "/ofrep/v1/evaluate/flags"],
)
@pytest.mark.parametrize("auth", ["valid", "invalid"])
def test_limits__300mb_content_length_headers_only__413_without_reading(
    limits_server: Any, path: str, auth: str
) -> None:
    dep, server = limits_server
    token = dep.data["sdk_key"] if auth == "valid" else "fa_production_nope"
    try:
        status, seconds = _headers_only(server.port, path, f"Bearer {token}")
    except TimeoutError:
        pytest.fail(f"no answer in 10 s to a 300 MB Content-Length on {path}: reading the body")
    FIGURES.add(f"300 MB Content-Length, {auth} key: {path}", converge_s=seconds, note=str(status))
    assert status == 413, status
    assert seconds < 5


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_limits__5000_level_json__400_everywhere(limits_server: Any) -> None:
    dep, server = limits_server
    deep = _deep(5000)
    answers = {
        "ofrep": httpx.post(
            f"{server.url}/ofrep/v1/evaluate/flags/{FLAG}",
            content=f'{{"context": {{"targetingKey": "u", "a": {deep}}}}}',
            headers={**dep.sdk_headers, "Content-Type": "application/json"},
            timeout=20,
        ),
        "events": httpx.post(
            f"{server.url}/sdk/v1/events",
            content=f'{{"events": {deep}}}',
            headers={**dep.sdk_headers, "Content-Type": "application/json"},
            timeout=20,
        ),
        "api": httpx.patch(
            server.url + STATE_PATH,
            content=f'{{"rules": {deep}}}',
            headers={
                **dep.api_headers,
                "Content-Type": "application/json",
                "If-Match": '"1"',
                "X-Change-Reason": "deep",
            },
            timeout=20,
        ),
    }
    FIGURES.add(
        "5,000-level JSON", note=" ".join(f"{k}:{r.status_code}" for k, r in answers.items())
    )
    for name, r in answers.items():
        assert r.status_code == 400, (name, r.status_code, r.text[:300])
        assert r.headers["Content-Type"].startswith("application/json"), name


def test_limits__weight_10_to_the_400__400_and_nothing_published(limits_server: Any) -> None:
    dep, server = limits_server
    before = state(server.url, dep.api_headers)
    served_before = ruleset_enabled(server.url, dep.sdk_headers)
    published_before = dep.sql("SELECT count(*) FROM flagapp_snapshot")[0][0]
    huge = "1" + "0" * 400
    body = (
        '{"rules": [{"when": [], "serve": {"rollout": {"weights": ['
        f'{{"variant": "on", "weight": {huge}}}, {{"variant": "off", "weight": 1}}'
        "]}}}]}"
    )
    r = httpx.patch(
        server.url + STATE_PATH,
        content=body,
        headers={
            **dep.api_headers,
            "Content-Type": "application/json",
            "If-Match": f'"{before["version"]}"',
            "X-Change-Reason": "huge weight",
        },
        timeout=20,
    )
    FIGURES.add("weight 10^400 through the API", note=str(r.status_code))
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert "weight" in r.text
    assert state(server.url, dep.api_headers)["version"] == before["version"]
    assert dep.sql("SELECT count(*) FROM flagapp_snapshot")[0][0] == published_before
    assert ruleset_enabled(server.url, dep.sdk_headers) is served_before
