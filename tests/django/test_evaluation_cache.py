"""The per-process snapshot cache: freshness bounds, zero queries when warm, fallbacks."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import caches
from django.test import RequestFactory

import flagapp
from flagapp import evaluation, snapshot
from flagapp.models import FlagState

from .eval_helpers import (  # noqa: F401 - fixtures
    clean_flag_cache_fixture,
    make_environment,
    make_flag,
    publish,
)

pytestmark = pytest.mark.django_db


def _set_enabled(key: str, enabled: bool, env: str = "production") -> None:
    FlagState.objects.filter(flag__key=key, environment__key=env).update(enabled=enabled)


def _announce_from_other_process(env: str = "production") -> int:
    """What another process's publish leaves behind: a stored snapshot and the shared-cache
    keys, but no signal in this process."""
    doc = snapshot.compile_environment(make_environment(env))
    latest = snapshot.latest(env)
    version = (latest.version if latest else 0) + 1
    doc["version"] = version
    text = json.dumps(doc)
    from flagapp.models import Snapshot

    Snapshot.objects.create(
        environment=make_environment(env), version=version, etag=doc["etag"], document=text
    )
    cache = caches["default"]
    cache.set(snapshot.cache_document_key(env, version), text, None)
    cache.set(snapshot.cache_version_key(env), version, None)
    return version


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A controllable ``time.monotonic`` for the cache (``clock[0] += s`` advances it)."""
    now = [1000.0]
    monkeypatch.setattr(evaluation, "_monotonic", lambda: now[0])
    return now


def test_publish__same_process__new_version_served_immediately():
    make_flag("checkout.new-flow")
    publish()
    assert flagapp.evaluate("checkout.new-flow", False).value is True
    _set_enabled("checkout.new-flow", False)
    publish()
    details = flagapp.evaluate("checkout.new-flow", True)
    assert (details.value, details.reason) == (True, "DISABLED")
    assert details.metadata["snapshotVersion"] == 2


def test_evaluate__warm__zero_queries(django_assert_num_queries: Any):
    make_flag("checkout.new-flow")
    make_flag(
        "checkout.color",
        "string",
        {"a": "blue", "b": "green"},
        states={"production": {"enabled": True, "fallthrough": {"variant": "b"}}},
    )
    publish()
    user = User.objects.create_user("ann", "ann@example.com", "pw")
    flagapp.evaluate("checkout.new-flow", False)  # warm the process cache
    request = RequestFactory().get("/")
    request.user = user
    anon = RequestFactory().get("/")
    anon.user = AnonymousUser()
    with django_assert_num_queries(0):
        for _ in range(3):
            assert flagapp.evaluate("checkout.new-flow", False, request).value is True
            assert flagapp.get_value(anon, "checkout.color", "red") == "green"
            assert flagapp.flag_is_active({"targetingKey": "u1"}, "checkout.new-flow")


def test_other_process_publish__seen_after_check_interval_not_before(clock: list[float]):
    make_flag("checkout.new-flow")
    publish()
    assert flagapp.evaluate("checkout.new-flow", False).value is True
    _set_enabled("checkout.new-flow", False)
    version = _announce_from_other_process()
    clock[0] += 0.5  # within CACHE_CHECK_INTERVAL (1.0 s): the process copy is trusted
    assert flagapp.evaluate("checkout.new-flow", True).reason == "STATIC"
    clock[0] += 0.6  # past it: one cache read finds the new version
    details = flagapp.evaluate("checkout.new-flow", True)
    assert (details.reason, details.metadata["snapshotVersion"]) == ("DISABLED", version)


def test_other_process_publish__document_in_cache__no_query(
    clock: list[float], django_assert_num_queries: Any
):
    make_flag("checkout.new-flow")
    publish()
    flagapp.evaluate("checkout.new-flow", False)
    _set_enabled("checkout.new-flow", False)
    _announce_from_other_process()
    clock[0] += 2
    with django_assert_num_queries(0):
        assert flagapp.evaluate("checkout.new-flow", True).reason == "DISABLED"


def test_cache_version_present_document_evicted__loaded_from_database(
    clock: list[float], django_assert_num_queries: Any
):
    make_flag("checkout.new-flow")
    publish()
    flagapp.evaluate("checkout.new-flow", False)
    _set_enabled("checkout.new-flow", False)
    version = _announce_from_other_process()
    caches["default"].delete(snapshot.cache_document_key("production", version))
    clock[0] += 2
    with django_assert_num_queries(1):
        assert flagapp.evaluate("checkout.new-flow", True).reason == "DISABLED"


def test_cold_process_empty_shared_cache__loads_database_and_reseeds_cache():
    make_flag("checkout.new-flow")
    snap = publish()
    caches["default"].clear()
    evaluation.clear_cache()
    assert flagapp.evaluate("checkout.new-flow", False).value is True
    assert caches["default"].get(snapshot.cache_version_key("production")) == snap.version
    assert caches["default"].get(snapshot.cache_document_key("production", snap.version))


def test_unchanged_version__rechecked_each_interval_without_reparsing(
    clock: list[float], monkeypatch: pytest.MonkeyPatch
):
    make_flag("checkout.new-flow")
    publish()
    flagapp.evaluate("checkout.new-flow", False)
    parsed: list[Any] = []
    real_parse = evaluation.parse_ruleset
    monkeypatch.setattr(evaluation, "parse_ruleset", lambda d: parsed.append(d) or real_parse(d))
    for _ in range(3):
        clock[0] += 2
        assert flagapp.evaluate("checkout.new-flow", False).value is True
    assert parsed == []


def test_corrupt_document_in_shared_cache__old_ruleset_kept(clock: list[float], caplog: Any):
    make_flag("checkout.new-flow")
    publish()
    flagapp.evaluate("checkout.new-flow", False)
    cache = caches["default"]
    cache.set(snapshot.cache_document_key("production", 7), '{"format": 1, "flags": 3}', None)
    cache.set(snapshot.cache_version_key("production"), 7, None)
    clock[0] += 2
    logging.getLogger("flagapp").propagate = True
    caplog.set_level(logging.ERROR, logger="flagapp")
    details = flagapp.evaluate("checkout.new-flow", False)
    assert (details.value, details.metadata["snapshotVersion"]) == (True, 1)
    assert any("failed to parse" in r.getMessage() for r in caplog.records)


def test_subscribe__listener_told_of_each_swap():
    make_flag("checkout.new-flow")
    seen: list[str | None] = []
    evaluation.subscribe(seen.append)
    try:
        publish()
        _set_enabled("checkout.new-flow", False)
        publish()
    finally:
        evaluation.unsubscribe(seen.append)
    assert seen == ["production", "production"]
    ruleset = evaluation.current_ruleset("production")
    assert ruleset is not None and ruleset.version == 2


def test_staging_and_production__separate_snapshots():
    make_flag(
        "checkout.new-flow",
        states={
            "production": {"enabled": False, "fallthrough": {"variant": "on"}},
            "staging": {"enabled": True, "fallthrough": {"variant": "on"}},
        },
    )
    publish("production")
    publish("staging")
    assert flagapp.evaluate("checkout.new-flow", False, environment="staging").value is True
    assert flagapp.evaluate("checkout.new-flow", False).reason == "DISABLED"


def test_usage__counts_and_sampled_contexts__recorded_on_flush(monkeypatch: pytest.MonkeyPatch):
    from flagapp import sampling

    make_flag("checkout.new-flow")
    publish()
    monkeypatch.setattr(evaluation, "_next_sample_gap", lambda: 2)  # every 2nd context
    evaluation._sample_countdown = 2
    for i in range(6):
        flagapp.evaluate("checkout.new-flow", False, {"targetingKey": f"u{i}"})
    assert evaluation.flush_usage() == 1
    stats = sampling.evaluation_stats("production")
    assert stats["checkout.new-flow"][0] == 6
    contexts = sampling.recent_contexts("production")
    assert sorted(c["targetingKey"] for c in contexts) == ["u1", "u3", "u5"]


def test_usage__request_finished__flushes_at_most_every_interval(
    client: Any, monkeypatch: pytest.MonkeyPatch, clock: list[float]
):
    make_flag("checkout.new-flow")
    publish()
    flagapp.evaluate("checkout.new-flow", False)
    calls: list[int] = []
    monkeypatch.setattr(evaluation, "flush_usage", lambda: calls.append(1) or 0)
    evaluation._last_usage_flush = clock[0]
    client.get("/no-such-page/")  # any request: request_finished fires
    assert calls == []
    clock[0] += 11  # SAMPLING_FLUSH_SECONDS defaults to 10
    client.get("/no-such-page/")
    assert calls == [1]


def test_groups_targeted__one_query_per_request_for_groups(django_assert_num_queries: Any):
    from django.contrib.auth.models import Group

    make_flag(
        "beta.search",
        states={
            "production": {
                "enabled": True,
                "rules": [
                    {
                        "id": "g",
                        "when": [{"attr": "groups", "op": "contains", "values": ["beta"]}],
                        "serve": {"variant": "on"},
                    }
                ],
                "fallthrough": {"variant": "off"},
            }
        },
    )
    make_flag("checkout.new-flow")
    publish()
    flagapp.evaluate("checkout.new-flow", False)  # warm
    user = User.objects.create_user("ann", "ann@example.com", "pw")
    user.groups.add(Group.objects.create(name="beta"))
    request = RequestFactory().get("/")
    request.user = user
    with django_assert_num_queries(1):  # the user's group names, once for the request
        assert flagapp.flag_is_active(request, "beta.search")
        assert flagapp.flag_is_active(request, "checkout.new-flow")
        assert flagapp.flag_is_active(request, "beta.search")
