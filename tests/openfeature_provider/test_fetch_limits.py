"""Bounds on one fetch: a total deadline and a body cap (issue 11, findings 3 and 8).

A per-read timeout does not bound a response that trickles in one byte at a time: every read
returns quickly. And a body read whole before parsing lets one bogus response (a proxy error
page, a mis-routed download) cost hundreds of megabytes. Both are tested against the real
local server: a slow-drip reply (status line, headers and body one byte at a time) and bodies
above the cap, with and without Content-Length, compressed and not.
"""

from __future__ import annotations

import json
import time

import pytest
from openfeature import api
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode

from openfeature_provider import FlagappProvider
from openfeature_provider.exceptions import ResponseTooLarge, SourceUnavailable
from openfeature_provider.transport import RulesetClient
from tests.openfeature_provider.conftest import EventRecorder, make_doc
from tests.openfeature_provider.flag_server import VALID_KEY, FlagServer, Scripted


def _big_doc(size: int) -> bytes:
    """A valid document of about ``size`` bytes (a long flag description in metadata)."""
    doc = make_doc(2)
    doc["flags"]["ui.theme"]["metadata"] = {"owner": "x" * size}
    return json.dumps(doc).encode()


def test_fetch__slow_drip_reply__fails_at_fetch_timeout(flag_server: FlagServer) -> None:
    """1 byte every 50 ms passes a 0.5 s read timeout forever (~80 s for this reply)."""
    flag_server.sticky = Scripted(drip=0.05)
    client = RulesetClient(
        flag_server.url, VALID_KEY, read_timeout=0.5, connect_timeout=0.5, fetch_timeout=1.0
    )
    started = time.monotonic()
    try:
        with pytest.raises(SourceUnavailable, match="fetch_timeout"):
            client.fetch()
    finally:
        client.close()
    assert time.monotonic() - started < 10  # the deadline, not the ~80 s the drip would take


def test_fetch__slow_drip_body_after_fast_headers__fails_at_fetch_timeout(
    flag_server: FlagServer,
) -> None:
    """Headers on time, then the body in 1-byte chunks: the deadline covers the body too."""
    flag_server.sticky = Scripted(drip=0.05, drip_headers=False)  # ~75 s for the body
    client = RulesetClient(flag_server.url, VALID_KEY, read_timeout=0.5, fetch_timeout=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(SourceUnavailable, match="timed out"):
            client.fetch()
    finally:
        client.close()
    assert time.monotonic() - started < 10


def test_provider__slow_drip__stale_within_deadline_then_ready(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    provider = FlagappProvider(
        url=flag_server.url,
        sdk_key=VALID_KEY,
        poll_interval=0.1,
        read_timeout=0.5,
        fetch_timeout=0.5,
        stale_after=0.3,
        backoff_base=0.05,
        backoff_max=0.1,
        name=provider_name,
    )
    api.set_provider_and_wait(provider)
    flag_server.sticky = Scripted(drip=0.05)
    stale = recorder.wait_count(ProviderEvent.PROVIDER_STALE, 1, timeout=5)
    assert len(stale) == 1 and "fetch_timeout" in (stale[0].message or "")
    assert api.get_client().get_string_value("ui.theme", "x") == "dark"  # still serving
    flag_server.sticky = None
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2


def test_fetch__content_length_over_cap__rejected_before_reading(flag_server: FlagServer) -> None:
    flag_server.sticky = Scripted(body=_big_doc(300_000))
    client = RulesetClient(flag_server.url, VALID_KEY, max_response_bytes=100_000)
    client._client.headers["Accept-Encoding"] = "identity"  # a plain Content-Length reply
    try:
        with pytest.raises(ResponseTooLarge, match="max_response_bytes"):
            client.fetch()
    finally:
        client.close()


def test_fetch__chunked_body_over_cap__rejected_while_streaming(flag_server: FlagServer) -> None:
    """No Content-Length: the cap is enforced on the bytes as they arrive."""
    flag_server.sticky = Scripted(body=_big_doc(300_000), chunked=16_384)
    client = RulesetClient(flag_server.url, VALID_KEY, max_response_bytes=100_000)
    try:
        with pytest.raises(ResponseTooLarge, match="100000"):
            client.fetch()
    finally:
        client.close()


def test_fetch__gzip_body_over_cap_once_decoded__rejected(flag_server: FlagServer) -> None:
    """A small compressed body that inflates past the cap counts by its decoded size."""
    body = _big_doc(300_000)
    flag_server.sticky = Scripted(body=body)  # the server gzips it: a few KB on the wire
    client = RulesetClient(flag_server.url, VALID_KEY, max_response_bytes=100_000)
    try:
        with pytest.raises(ResponseTooLarge):
            client.fetch()
    finally:
        client.close()


def test_fetch__body_under_cap__accepted(flag_server: FlagServer) -> None:
    flag_server.sticky = Scripted(body=_big_doc(50_000), chunked=4096)
    client = RulesetClient(flag_server.url, VALID_KEY, max_response_bytes=100_000)
    try:
        ruleset, changed = client.fetch()
    finally:
        client.close()
    assert (ruleset.version, changed) == (2, True)


def test_provider__response_over_cap__error_and_previous_snapshot_kept(
    flag_server: FlagServer, provider_name: str, recorder: EventRecorder
) -> None:
    provider = FlagappProvider(
        url=flag_server.url,
        sdk_key=VALID_KEY,
        poll_interval=0.1,
        backoff_base=0.05,
        backoff_max=0.1,
        max_response_bytes=100_000,
        name=provider_name,
    )
    api.set_provider_and_wait(provider)
    flag_server.sticky = Scripted(body=_big_doc(300_000), chunked=16_384)
    errors = recorder.wait_count(ProviderEvent.PROVIDER_ERROR, 1)
    assert len(errors) == 1 and "max_response_bytes" in (errors[0].message or "")
    assert errors[0].error_code == ErrorCode.GENERAL
    assert provider.snapshot is not None and provider.snapshot.version == 1
    flag_server.sticky = None
    assert len(recorder.wait_count(ProviderEvent.PROVIDER_READY, 2)) == 2
