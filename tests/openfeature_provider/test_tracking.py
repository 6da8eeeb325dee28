"""Tracking and exposures: bounded buffer, batched POSTs to /sdk/v1/events, flush on shutdown."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.track import TrackingEventDetails

from openfeature_provider import ConfigurationError, FlagappProvider, InMemorySource
from openfeature_provider.exceptions import RateLimited, SourceUnavailable, UnexpectedResponse
from openfeature_provider.testing import RecordingSink
from openfeature_provider.tracking import EventBuffer, EventSender, encode_batch, encode_events
from tests.openfeature_provider.conftest import make_doc, wait_until
from tests.openfeature_provider.flag_server import VALID_KEY, FlagServer


def _event(i: int) -> tuple:  # type: ignore[type-arg]
    return ("track", f"e{i}", None, None, {}, None, 1_700_000_000.0 + i)


def test_buffer__full__drops_oldest_and_counts() -> None:
    buf = EventBuffer(capacity=3)
    for i in range(5):
        buf.add(_event(i))
    assert buf.dropped == 2 and buf.recorded == 5
    assert [e[1] for e in buf.take(10)] == ["e2", "e3", "e4"]


def test_buffer__put_back_over_capacity__excess_dropped_and_counted() -> None:
    buf = EventBuffer(capacity=3)
    buf.add(_event(9))
    buf.add(_event(10))
    buf.put_back([_event(1), _event(2)])
    assert [e[1] for e in buf.take(10)] == ["e2", "e9", "e10"]
    assert buf.dropped == 1


def test_encode__protocol_shape() -> None:
    when = 1_700_000_000.25
    body = json.loads(
        encode_events(
            [
                ("exposure", "f.k", "on", True, {"targetingKey": "u1"}, {"reason": "SPLIT"}, when),
                (
                    "track",
                    "checkout",
                    None,
                    9.5,
                    {"at": datetime(2024, 1, 1, tzinfo=UTC)},
                    None,
                    when,
                ),
            ]
        )
    )
    exposure, track = body["events"]
    assert exposure == {
        "kind": "exposure",
        "flag": "f.k",
        "variant": "on",
        "value": True,
        "context": {"targetingKey": "u1"},
        "timestamp": "2023-11-14T22:13:20.250+00:00",
        "details": {"reason": "SPLIT"},
    }
    assert track["kind"] == "track" and track["name"] == "checkout" and track["value"] == 9.5
    assert track["context"] == {"at": "2024-01-01T00:00:00+00:00"}


def test_sender__batches_of_batch_size__all_delivered() -> None:
    posted: list[int] = []

    def post(body: bytes) -> int:
        n = len(json.loads(body)["events"])
        posted.append(n)
        return n

    buf = EventBuffer(capacity=100)
    sender = EventSender(buf, post, batch_size=4, flush_interval=10)
    sender.start()
    for i in range(10):
        buf.add(_event(i))
    assert wait_until(lambda: sum(posted) >= 8)  # two full batches go without waiting
    sender.close()  # flushes the rest
    assert posted == [4, 4, 2] and sender.sent == 10


def test_sender__server_rejects_413__batch_dropped_and_counted() -> None:
    def post(body: bytes) -> int:
        raise UnexpectedResponse("events: unexpected status 413", 413)

    buf = EventBuffer(capacity=10)
    sender = EventSender(buf, post, batch_size=5)
    buf.add(_event(1))
    sender.close()
    assert sender.rejected == 1 and len(buf) == 0


def test_sender__server_down__events_kept_for_retry() -> None:
    def post(body: bytes) -> int:
        raise SourceUnavailable("refused")

    buf = EventBuffer(capacity=10)
    sender = EventSender(buf, post, batch_size=5, flush_timeout=0.2)
    buf.add(_event(1))
    sender.close()
    assert sender.failed_batches >= 1 and sender.stats()["pending_events"] == 1


def test_provider__track_and_exposures__posted_to_server_and_flushed_on_shutdown(
    flag_server: FlagServer,
) -> None:
    provider = FlagappProvider(
        url=flag_server.url,
        sdk_key=VALID_KEY,
        exposure_sample_rate=1.0,
        event_flush_interval=30,  # only shutdown's flush can deliver them
    )
    api.set_provider_and_wait(provider)
    client = api.get_client()
    ctx = EvaluationContext("user-42", {"plan": "pro"})
    client.get_boolean_value("checkout.new-flow", False, ctx)
    client.get_boolean_value("nope", False, ctx)  # errors are not exposures
    client.track("checkout.completed", ctx, TrackingEventDetails(42.5, {"items": 3}))
    assert flag_server.events == []
    api.clear_providers()  # shuts the provider down
    kinds = [(e["kind"], e.get("flag") or e.get("name")) for e in flag_server.events]
    assert kinds == [
        ("exposure", "checkout.new-flow"),
        ("track", "checkout.completed"),
        ("evaluation", "checkout.new-flow"),  # the usage count, flushed on shutdown too
    ]
    exposure, track, usage = flag_server.events
    assert (usage["variant"], usage["count"], usage["context"]) == ("on", 1, {})
    assert exposure["variant"] == "on" and exposure["value"] is True
    assert exposure["context"] == {"plan": "pro", "targetingKey": "user-42"}
    assert exposure["details"]["reason"] == "TARGETING_MATCH"
    assert track["value"] == 42.5 and track["details"] == {"items": 3}
    post = next(r for r in flag_server.requests if r.method == "POST")
    assert post.headers["Authorization"] == f"Bearer {VALID_KEY}"


def test_provider__sample_rate_zero__no_exposures() -> None:
    bodies: list[bytes] = []
    provider = FlagappProvider(
        source=InMemorySource(make_doc()), event_sink=lambda b: bodies.append(b) or 0
    )
    api.set_provider_and_wait(provider)
    for _ in range(50):
        api.get_client().get_string_value("ui.theme", "x")
    assert provider.events is not None and provider.events.recorded == 0


def test_provider__sample_rate_half__roughly_half_recorded() -> None:
    provider = FlagappProvider(
        source=InMemorySource(make_doc()), event_sink=lambda b: 0, exposure_sample_rate=0.5
    )
    api.set_provider_and_wait(provider)
    for _ in range(2000):
        api.get_client().get_string_value("ui.theme", "x")
    assert provider.events is not None
    assert 800 < provider.events.recorded < 1200  # binomial: 10 sigma either side


def test_provider__track_with_server_down__never_blocks_or_raises() -> None:
    server = FlagServer(make_doc()).start()
    provider = FlagappProvider(
        url=server.url, sdk_key=VALID_KEY, event_capacity=5, event_flush_interval=0.05
    )
    api.set_provider_and_wait(provider)
    server.stop()
    for i in range(20):
        api.get_client().track(f"e{i}")
    assert provider.events is not None
    assert provider.events.recorded == 20 and len(provider.events) <= 5
    time.sleep(0.1)


def test_sender__413_for_big_batches__split_until_accepted() -> None:
    sizes: list[int] = []

    def post(body: bytes) -> int:
        n = len(json.loads(body)["events"])
        sizes.append(n)
        if n > 2:
            raise UnexpectedResponse("events: unexpected status 413", 413)
        return n

    buf = EventBuffer(capacity=10)
    sender = EventSender(buf, post, batch_size=8)
    for i in range(7):
        buf.add(_event(i))
    sender.close()
    assert sender.sent == 7 and sender.rejected == 0
    assert sizes == [7, 3, 1, 2, 4, 2, 2]


def test_provider__custom_source_with_url__events_still_posted(flag_server: FlagServer) -> None:
    provider = FlagappProvider(
        source=InMemorySource(make_doc()), url=flag_server.url, sdk_key=VALID_KEY
    )
    api.set_provider_and_wait(provider)
    api.get_client().track("signup", EvaluationContext("u1"))
    provider.shutdown()
    assert [e["name"] for e in flag_server.events] == ["signup"]
    assert flag_server.count("/sdk/v1/ruleset") == 0  # rules came from the custom source


# --- issue 10 item 5: batch ids, bounded retries, poisoned batches, unencodable events ------


def _strict(body: bytes) -> dict[str, Any]:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} sent")

    return json.loads(body, parse_constant=refuse)  # type: ignore[no-any-return]


def test_post__batch_id_header__uuid4_hex_and_same_on_every_retry(flag_server: FlagServer) -> None:
    """The server stores a retried batch once, keyed on X-Flagapp-Batch-Id."""
    flag_server.events_script.extend([503, 500])
    provider = FlagappProvider(
        url=flag_server.url,
        sdk_key=VALID_KEY,
        event_flush_interval=0.05,
        event_retry_base=0.05,
    )
    api.set_provider_and_wait(provider)
    api.get_client().track("signup", EvaluationContext("u1"))
    assert wait_until(lambda: len(flag_server.events) == 1)
    posts = [r for r in flag_server.requests if r.path == "/sdk/v1/events"]
    ids = {r.headers.get("X-Flagapp-Batch-Id") for r in posts}
    assert len(posts) == 3 and len(ids) == 1
    batch_id = ids.pop()
    assert batch_id is not None and uuid.UUID(hex=batch_id).version == 4
    assert batch_id == uuid.UUID(hex=batch_id).hex  # 32 lowercase hex digits
    api.get_client().track("second", EvaluationContext("u1"))
    assert wait_until(lambda: len(flag_server.events) == 2)
    last = [r for r in flag_server.requests if r.path == "/sdk/v1/events"][-1]
    assert last.headers["X-Flagapp-Batch-Id"] != batch_id  # a new batch, a new id


def test_sender__transient_failures__bounded_attempts_with_backoff_then_dropped() -> None:
    calls: list[tuple[float, str]] = []
    down = True

    def post(body: bytes, batch_id: str) -> int:
        calls.append((time.monotonic(), batch_id))
        if down:
            raise SourceUnavailable("events: server error 503")
        return len(json.loads(body)["events"])

    buf = EventBuffer(capacity=100)
    sender = EventSender(
        buf, post, batch_size=10, flush_interval=0.01, retry_base=0.05, max_attempts=4
    )
    sender.start()
    buf.add(_event(1))
    assert wait_until(lambda: sender.stats()["dropped_batches"] == 1)
    assert len(calls) == 4 and len({b for _, b in calls}) == 1  # same id, 4 attempts
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(calls)]
    assert gaps[-1] > gaps[0]  # exponential, not a fixed retry rate
    down = False
    buf.add(_event(2))  # later batches are not blocked by the dropped one
    assert wait_until(lambda: sender.sent == 1)
    sender.close()
    stats = sender.stats()
    assert (stats["dropped_events"], stats["failed_posts"], stats["sent"]) == (1, 4, 1)


def test_sender__poisoned_batch_4xx__dropped_at_once_later_batches_flow() -> None:
    bodies: list[bytes] = []

    def post(body: bytes, batch_id: str) -> int:
        bodies.append(body)
        if b"poison" in body:
            raise UnexpectedResponse("events: unexpected status 422", 422)
        return len(json.loads(body)["events"])

    buf = EventBuffer(capacity=100)
    sender = EventSender(buf, post, batch_size=1, flush_interval=0.01)
    buf.add(("track", "poison", None, None, {}, None, 1.7e9))
    buf.add(_event(2))
    sender.close()
    assert len(bodies) == 2  # the poisoned batch was posted once, never retried
    stats = sender.stats()
    assert (stats["dropped_batches"], stats["dropped_events"], stats["sent"]) == (1, 1, 1)


def test_sender__429__retried_like_a_transient_failure() -> None:
    attempts: list[str] = []

    def post(body: bytes, batch_id: str) -> int:
        attempts.append(batch_id)
        if len(attempts) == 1:
            raise RateLimited("events: rate limited (429)", 0.01)
        return 1

    buf = EventBuffer(capacity=10)
    sender = EventSender(buf, post, batch_size=5, flush_interval=0.01, retry_base=0.01)
    sender.start()
    buf.add(_event(1))
    assert wait_until(lambda: sender.sent == 1)
    sender.close()
    assert len(attempts) == 2 and attempts[0] == attempts[1]
    assert sender.stats()["dropped_batches"] == 0


def test_track__nan_infinity_nul__that_event_dropped_and_counted_queue_flows(
    flag_server: FlagServer,
) -> None:
    """Before: Python's json wrote NaN, the server answered 500 and the provider resent the
    batch forever, so no later event was ever delivered."""
    provider = FlagappProvider(url=flag_server.url, sdk_key=VALID_KEY, event_flush_interval=0.05)
    api.set_provider_and_wait(provider)
    client = api.get_client()
    ctx = EvaluationContext("u1")
    client.track("nan", ctx, TrackingEventDetails(float("nan")))
    client.track("inf", ctx, TrackingEventDetails(1.0, {"ratio": float("inf")}))
    client.track("nul", ctx, TrackingEventDetails(1.0, {"note": "a\x00b"}))
    client.track("nul-key", EvaluationContext("u1", {"k\x00": 1}))
    client.track("neg-inf", EvaluationContext("u1", {"score": float("-inf")}))
    client.track("good", ctx, TrackingEventDetails(2.0, {"note": "a\\u0000 is fine as text"}))
    assert wait_until(lambda: len(flag_server.events) == 1)
    assert flag_server.events[0]["name"] == "good"
    assert flag_server.events[0]["details"]["note"] == "a\\u0000 is fine as text"
    client.track("later", ctx)
    assert wait_until(lambda: len(flag_server.events) == 2)
    for r in flag_server.requests:
        if r.path == "/sdk/v1/events":
            _strict(r.body)
    assert wait_until(lambda: provider.tracking_stats()["sent"] == 2)  # after the 202 arrives
    stats = provider.tracking_stats()
    assert stats["invalid_events"] == 5
    assert stats["dropped_batches"] == 0


def test_encode_batch__strict_json_and_invalid_events_counted() -> None:
    body, invalid = encode_batch(
        [
            ("track", "a", None, float("nan"), {}, None, 1.7e9),
            ("track", "b", None, 1.0, {"deep": _deep(5000)}, None, 1.7e9),  # unencodable
            ("track", "c", None, 1.0, {}, None, 1.7e9),
        ]
    )
    assert invalid == 2
    assert [e["name"] for e in _strict(body)["events"]] == ["c"]


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_tracking_stats__no_events_configured__zeros() -> None:
    provider = FlagappProvider(source=InMemorySource(make_doc()), send_events=False)
    stats = provider.tracking_stats()
    assert stats["sent"] == 0 and stats["recorded"] == 0


def test_event_sink__one_argument__still_supported_and_gets_strict_json() -> None:
    bodies: list[bytes] = []
    provider = FlagappProvider(
        source=InMemorySource(make_doc()), event_sink=lambda b: bodies.append(b) or 1
    )
    api.set_provider_and_wait(provider)
    api.get_client().track("x", EvaluationContext("u1", {"v": float("nan")}))
    api.get_client().track("y", EvaluationContext("u1"))
    provider.shutdown()
    assert [e["name"] for b in bodies for e in _strict(b)["events"]] == ["y"]


# --- issue 14 part 2: usage counts by default, without personal data ----------------------


def _usage_provider(**options: Any) -> tuple[FlagappProvider, Any, RecordingSink]:
    sink = RecordingSink()
    provider = FlagappProvider(source=InMemorySource(make_doc()), event_sink=sink, **options)
    domain = f"usage-{uuid.uuid4().hex}"
    api.set_provider_and_wait(provider, domain)
    return provider, api.get_client(domain), sink


def test_usage__evaluations__one_count_per_flag_and_variant_without_context() -> None:
    provider, client, sink = _usage_provider(event_flush_interval=30)
    pro = EvaluationContext("user-1", {"plan": "pro", "email": "a@example.com"})
    free = EvaluationContext("user-2", {"plan": "free"})
    for _ in range(5):
        client.get_boolean_value("checkout.new-flow", False, pro)  # rule: on
    for _ in range(3):
        client.get_boolean_value("checkout.new-flow", False, free)  # fallthrough: off
    client.get_string_value("ui.theme", "light")
    client.get_integer_value("ui.theme", 1)  # wrong type: still a use of the flag
    client.get_boolean_value("no.such-flag", False)  # unknown: not counted
    assert sink.events == []  # nothing sent before the interval or shutdown
    provider.shutdown()
    usage = sorted((e["flag"], e["variant"] or "", e["count"]) for e in sink.of_kind("evaluation"))
    assert usage == [
        ("checkout.new-flow", "off", 3),
        ("checkout.new-flow", "on", 5),
        ("ui.theme", "", 1),  # the TYPE_MISMATCH: no variant served
        ("ui.theme", "dark", 1),
    ]
    assert all(e["context"] == {} and e["details"] == {} for e in sink.events)
    assert sink.of_kind("exposure") == []  # exposure_sample_rate defaults to 0
    stats = provider.tracking_stats()
    assert (stats["usage_events"], stats["usage_evaluations"], stats["usage_pending"]) == (
        4,
        10,
        0,
    )


def test_usage__interval_elapses__sent_periodically_without_shutdown() -> None:
    provider, client, sink = _usage_provider(usage_interval=0.05, event_flush_interval=30)
    try:
        for _ in range(4):
            client.get_string_value("ui.theme", "light")
        assert wait_until(lambda: len(sink.of_kind("evaluation")) == 1)
        assert sink.of_kind("evaluation")[0]["count"] == 4
        client.get_string_value("ui.theme", "light")
        assert wait_until(lambda: len(sink.of_kind("evaluation")) == 2)
        assert sink.of_kind("evaluation")[1]["count"] == 1  # a new window, not a running total
    finally:
        provider.shutdown()


def test_usage__send_usage_false__no_counts() -> None:
    provider, client, sink = _usage_provider(send_usage=False)
    client.get_string_value("ui.theme", "light")
    provider.shutdown()
    assert sink.events == []
    assert provider.tracking_stats()["usage_evaluations"] == 0


def test_usage__send_events_false__nothing_counted_or_sent(flag_server: FlagServer) -> None:
    provider = FlagappProvider(url=flag_server.url, sdk_key=VALID_KEY, send_events=False)
    api.set_provider_and_wait(provider)
    api.get_client().get_boolean_value("checkout.new-flow", False)
    api.clear_providers()
    assert flag_server.events == []
    assert provider._usage is None


def test_usage_interval__not_positive__configuration_error_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="usage_interval"):
        FlagappProvider(source=InMemorySource(make_doc()), usage_interval=0)
