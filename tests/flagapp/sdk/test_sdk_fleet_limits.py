"""The default rate limits fit a fleet sharing one SDK key (docs/scale.md, "Fleets")."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, override_settings

from flagapp.models import SdkEvent
from flagapp.sdk import ratelimit
from tests.flagapp.sdk_helpers import *  # noqa: F403 - fixtures
from tests.flagapp.sdk_helpers import ALL_KINDS, bearer

pytestmark = pytest.mark.django_db

RULESET = "/sdk/v1/ruleset"


def test_default_limits__1000_pollers_sharing_a_key__all_304_not_429(
    sdk_token: str, install_flags: Callable[..., Any]
) -> None:
    """One second of a 1,000-instance fleet polling every second with its ETag (the issue
    measured 429 on 98% of these polls with the old default of 10/s, burst 60)."""
    rs = install_flags(ALL_KINDS, version=3)
    client = Client()
    statuses = Counter(
        client.get(RULESET, HTTP_IF_NONE_MATCH=f'"{rs.etag}"', **bearer(sdk_token)).status_code
        for _ in range(1000)
    )
    assert statuses == {304: 1000}


def test_default_limits__stream_connects_of_a_fleet__allowed() -> None:
    """10,000 instances reconnecting at once (a deploy) all get through."""
    ratelimit.reset("stream", "key:fleet")
    refused = sum(not ratelimit.check("stream", "key:fleet").allowed for _ in range(10_000))
    assert refused == 0


def test_default_limits__bad_keys__still_limited_per_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a valid key the tight "unauthenticated" limit applies (burst 60), not the
    fleet-sized one of the endpoint's scope. The clock stands still: no refill."""
    monkeypatch.setattr(ratelimit.time, "time", lambda: 1_000_000.0)
    ratelimit.reset("sdk", "ip:203.0.113.9")
    allowed = [ratelimit.check("sdk", "ip:203.0.113.9").allowed for _ in range(80)]
    assert allowed == [True] * 60 + [False] * 20


@override_settings(FLAGAPP={"RATE_LIMITS": {"sdk": {"rate": 0.01, "burst": 2}}})
def test_settings_without_a_stream_scope__stream_limited_by_sdk() -> None:
    """A RATE_LIMITS written before "stream" existed keeps limiting stream connects."""
    ratelimit.reset("stream", "key:old")
    assert [ratelimit.check("stream", "key:old").allowed for _ in range(3)] == [True, True, False]


def test_default_limits__50_instances_flushing_events_with_one_key__every_event_stored(
    sdk_token: str, install_flags: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fleet of 50 instances sharing one key, each flushing a backlog of 5 batches within
    one second (a deploy: every buffer holds more than a batch; the provider posts them back
    to back). With the old default (20/s, burst 100) 150 of these 250 posts were refused
    with 429 — events a provider then retries and, after its attempts, drops."""
    install_flags(ALL_KINDS)
    clock = itertools.count(1_000_000.0, 0.004)  # 250 posts spread over one second
    monkeypatch.setattr(ratelimit.time, "time", lambda: next(clock))
    client = Client()
    statuses: Counter[int] = Counter()
    for instance in range(50):
        for batch in range(5):
            body = {
                "events": [
                    {
                        "kind": "exposure",
                        "flag": "demo.bool",
                        "variant": "on",
                        "context": {"targetingKey": f"i{instance}-b{batch}-{i}"},
                    }
                    for i in range(2)
                ]
            }
            response = client.post(
                "/sdk/v1/events",
                data=json.dumps(body),
                content_type="application/json",
                **bearer(sdk_token),
            )
            statuses[response.status_code] += 1
    assert statuses == {202: 250}
    assert SdkEvent.objects.count() == 500


def test_bucket_name__namespace_setting_changed__new_name() -> None:
    """Bucket names are memoised (working the namespace out cost more than the rest of a warm
    304); a changed NAMESPACE must still give new buckets."""
    with override_settings(FLAGAPP={"NAMESPACE": "one"}):
        assert ratelimit._bucket_name("sdk", "key:7") == "flagapp:one:rl:sdk:key:7"
    with override_settings(FLAGAPP={"NAMESPACE": "two"}):
        assert ratelimit._bucket_name("sdk", "key:7") == "flagapp:two:rl:sdk:key:7"


@pytest.mark.django_db(transaction=True)
def test_lean_handler__short_answer__no_disconnect_listener_task(
    sdk_token: str, install_flags: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 304 through the SDK fast path runs without the per-request disconnect listener (two
    tasks and a wait per request); only the streams watch for the client leaving."""
    import asyncio

    from flagapp.asgi import LeanASGIHandler

    rs = install_flags(ALL_KINDS, version=3)
    handler = LeanASGIHandler()
    listened: list[bool] = []
    monkeypatch.setattr(
        LeanASGIHandler, "listen_for_disconnect", lambda self, receive: listened.append(True)
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/sdk/v1/ruleset",
        "raw_path": b"/sdk/v1/ruleset",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {sdk_token}".encode()),
            (b"if-none-match", f'"{rs.etag}"'.encode()),
        ],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5555),
        "root_path": "",
    }
    asyncio.run(handler(scope, receive, send))
    assert sent[0]["status"] == 304
    assert listened == []
