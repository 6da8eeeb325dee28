"""The default rate limits fit a fleet sharing one SDK key (docs/scale.md, "Fleets")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, override_settings

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
