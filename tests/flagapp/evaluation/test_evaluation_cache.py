"""The per-process snapshot cache: freshness bounds, zero queries when warm, fallbacks.

Two freshness modes (issue 10 finding 2): with a shared cache (Redis, Memcached, ...) a
process learns of another process's publish from the cache's version pointer, query-free;
with a per-process cache (LocMem, the tests' and the example project's default; Dummy) it
asks the database for the latest published version, one small query per check interval.
Tests of the shared mode run the LocMem cache with ``SHARED_CACHE = True``: one process
playing every process of a deployment that shares it. The same guarantee across real
processes is tests/flagapp/test_freshness_processes.py.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import caches
from django.test import RequestFactory

import flagapp
from flagapp import evaluation, sampling, snapshot
from flagapp.evaluation import cache as evaluation_cache
from flagapp.models import FlagEvaluationStat, FlagState, Snapshot
from tests.flagapp.eval_helpers import (  # noqa: F401 - fixtures
    clean_flag_cache_fixture,
    make_environment,
    make_flag,
    publish,
)

pytestmark = pytest.mark.django_db


def _set_enabled(key: str, enabled: bool, env: str = "production") -> None:
    FlagState.objects.filter(flag__key=key, environment__key=env).update(enabled=enabled)


def _store_from_other_process(env: str = "production") -> tuple[int, str]:
    """Another process's publish as this process can see it with a per-process cache: a
    stored snapshot row, nothing in this process's cache, no signal here."""
    doc = snapshot.compile_environment(make_environment(env))
    latest = snapshot.latest(env)
    version = (latest.version if latest else 0) + 1
    doc["version"] = version
    text = json.dumps(doc)
    Snapshot.objects.create(
        environment=make_environment(env), version=version, etag=doc["etag"], document=text
    )
    return version, text


def _announce_from_other_process(env: str = "production") -> int:
    """What another process's publish leaves behind with a shared cache: a stored snapshot
    and the shared-cache keys, but no signal in this process."""
    version, text = _store_from_other_process(env)
    cache = caches["default"]
    cache.set(snapshot.cache_document_key(env, version), text, None)
    cache.set(snapshot.cache_version_key(env), version, None)
    return version


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A controllable ``time.monotonic`` for the cache (``clock[0] += s`` advances it)."""
    now = [1000.0]
    monkeypatch.setattr(evaluation_cache, "_monotonic", lambda: now[0])
    return now


@pytest.fixture
def shared_cache(settings: Any) -> None:
    """The LocMem cache standing in for a cache every process shares."""
    settings.FLAGAPP = {**settings.FLAGAPP, "SHARED_CACHE": True}


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


def test_other_process_publish__shared_cache__seen_after_check_interval_not_before(
    clock: list[float], shared_cache: None
):
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


def test_other_process_publish__shared_cache_document_in_cache__no_query(
    clock: list[float], shared_cache: None, django_assert_num_queries: Any
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
    clock: list[float], shared_cache: None, django_assert_num_queries: Any
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


def test_cold_process_empty_shared_cache__loads_database_and_reseeds_cache(shared_cache: None):
    make_flag("checkout.new-flow")
    snap = publish()
    caches["default"].clear()
    evaluation.clear_cache()
    assert flagapp.evaluate("checkout.new-flow", False).value is True
    assert caches["default"].get(snapshot.cache_version_key("production")) == snap.version
    assert caches["default"].get(snapshot.cache_document_key("production", snap.version))


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-process"])
def test_unchanged_version__rechecked_each_interval_without_reparsing(
    clock: list[float], monkeypatch: pytest.MonkeyPatch, settings: Any, shared: bool
):
    settings.FLAGAPP = {**settings.FLAGAPP, "SHARED_CACHE": shared}
    make_flag("checkout.new-flow")
    publish()
    flagapp.evaluate("checkout.new-flow", False)
    parsed: list[Any] = []
    real_parse = evaluation_cache.parse_ruleset
    monkeypatch.setattr(
        evaluation_cache, "parse_ruleset", lambda d: parsed.append(d) or real_parse(d)
    )
    for _ in range(3):
        clock[0] += 2
        assert flagapp.evaluate("checkout.new-flow", False).value is True
    assert parsed == []


def test_corrupt_document_in_shared_cache__old_ruleset_kept(
    clock: list[float], shared_cache: None, caplog: Any
):
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


def test_usage__evaluations__noted_in_the_one_sampling_buffer(settings: Any):
    """One usage buffer (issue 12): flagapp.evaluate notes into flagapp.sampling's."""
    settings.FLAGAPP = {**settings.FLAGAPP, "CONTEXT_SAMPLE_RATE": 1.0}
    make_flag("checkout.new-flow")
    publish()
    for i in range(6):
        flagapp.evaluate("checkout.new-flow", False, {"targetingKey": f"u{i}"})
    assert sampling.pending_counts() == {("production", "checkout.new-flow"): 6}
    assert evaluation.flush_usage() == 6
    stats = sampling.evaluation_stats("production")
    assert stats["checkout.new-flow"][0] == 6
    contexts = sampling.recent_contexts("production")
    assert sorted(c["targetingKey"] for c in contexts) == [f"u{i}" for i in range(6)]


def test_usage__flush_overdue__never_written_inside_evaluate(
    monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
):
    make_flag("checkout.new-flow")
    publish()
    flagapp.evaluate("checkout.new-flow", False)  # warm
    monkeypatch.setattr(sampling, "_last_flush", -1e9)  # a flush is long overdue
    with django_assert_num_queries(0):
        assert flagapp.evaluate("checkout.new-flow", False, {"targetingKey": "u"}).value
    assert sampling.pending_counts()[("production", "checkout.new-flow")] == 2


def test_usage__request_finished__flushes_at_most_every_interval(
    client: Any, monkeypatch: pytest.MonkeyPatch
):
    make_flag("checkout.new-flow")
    publish()
    flagapp.evaluate("checkout.new-flow", False)
    monkeypatch.setattr(sampling, "_last_flush", time.monotonic())
    client.get("/no-such-page/")  # any request: request_finished fires
    assert not FlagEvaluationStat.objects.exists()
    monkeypatch.setattr(sampling, "_last_flush", -1e9)  # SAMPLING_FLUSH_SECONDS ago and more
    client.get("/no-such-page/")
    assert FlagEvaluationStat.objects.get().count == 1


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


# --------------------------------------------------------------------------- issue 10 #2
# A per-process cache (LocMem, Dummy) cannot carry another process's publish: the check is
# one small query of the latest published version, per CACHE_CHECK_INTERVAL.


def test_other_process_publish__per_process_cache__seen_after_check_interval(
    clock: list[float],
):
    make_flag("checkout.new-flow")
    publish()
    assert flagapp.evaluate("checkout.new-flow", False).value is True
    _set_enabled("checkout.new-flow", False)
    version, _ = _store_from_other_process()  # nothing in this process's cache: LocMem
    clock[0] += 0.5  # within CACHE_CHECK_INTERVAL (1.0 s): the process copy is trusted
    assert flagapp.evaluate("checkout.new-flow", True).reason == "STATIC"
    clock[0] += 0.6  # past it: the database says there is a newer version
    details = flagapp.evaluate("checkout.new-flow", True)
    assert (details.reason, details.metadata["snapshotVersion"]) == ("DISABLED", version)


def test_freshness_check__per_process_cache_unchanged__one_query_per_interval(
    clock: list[float], django_assert_num_queries: Any
):
    make_flag("checkout.new-flow")
    publish()
    flagapp.evaluate("checkout.new-flow", False)
    with django_assert_num_queries(0):
        for _ in range(100):
            flagapp.evaluate("checkout.new-flow", False)
    clock[0] += 1.1
    with django_assert_num_queries(1) as ctx:  # the version, no document
        for _ in range(100):
            assert flagapp.evaluate("checkout.new-flow", False).value is True
    assert "document" not in ctx.captured_queries[0]["sql"]


def test_freshness_check__shared_cache_unchanged__no_query(
    clock: list[float], shared_cache: None, django_assert_num_queries: Any
):
    make_flag("checkout.new-flow")
    publish()
    flagapp.evaluate("checkout.new-flow", False)
    for _ in range(3):
        clock[0] += 1.1
        with django_assert_num_queries(0):
            assert flagapp.evaluate("checkout.new-flow", False).value is True


def test_other_process_publish__dummy_cache__seen_after_check_interval(
    clock: list[float], settings: Any
):
    settings.CACHES = {
        **settings.CACHES,
        "flags": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
    }
    settings.FLAGAPP = {**settings.FLAGAPP, "CACHE_ALIAS": "flags"}
    make_flag("checkout.new-flow")
    publish()
    assert flagapp.evaluate("checkout.new-flow", False).value is True
    _set_enabled("checkout.new-flow", False)
    version, _ = _store_from_other_process()
    clock[0] += 1.1
    details = flagapp.evaluate("checkout.new-flow", True)
    assert (details.reason, details.metadata["snapshotVersion"]) == ("DISABLED", version)


def test_freshness_check__database_error__ruleset_kept_and_retried_next_interval(
    clock: list[float], monkeypatch: pytest.MonkeyPatch
):
    make_flag("checkout.new-flow")
    publish()
    flagapp.evaluate("checkout.new-flow", False)
    calls: list[str] = []

    def down(env: str) -> Any:
        calls.append(env)
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(evaluation_cache, "published_version", down)
    clock[0] += 1.1
    for _ in range(5):
        assert flagapp.evaluate("checkout.new-flow", False).value is True
    assert calls == ["production"]  # once per interval, not once per evaluation


@pytest.mark.parametrize(
    ("backend", "forced", "shared"),
    [
        ("django.core.cache.backends.locmem.LocMemCache", None, False),
        ("django.core.cache.backends.dummy.DummyCache", None, False),
        ("django.core.cache.backends.redis.RedisCache", None, True),
        ("django.core.cache.backends.memcached.PyMemcacheCache", None, True),
        ("django.core.cache.backends.db.DatabaseCache", None, True),
        ("django.core.cache.backends.filebased.FileBasedCache", None, True),
        ("django_redis.cache.RedisCache", None, True),
        ("django.core.cache.backends.locmem.LocMemCache", True, True),
        ("django.core.cache.backends.redis.RedisCache", False, False),
    ],
)
def test_cache_is_shared__backend_or_setting__decides(
    settings: Any, backend: str, forced: bool | None, shared: bool
):
    settings.CACHES = {**settings.CACHES, "flags": {"BACKEND": backend, "LOCATION": "x"}}
    settings.FLAGAPP = {**settings.FLAGAPP, "CACHE_ALIAS": "flags", "SHARED_CACHE": forced}
    assert evaluation.cache_is_shared() is shared


def test_freshness_check__slow_in_one_thread__other_threads_serve_the_held_ruleset(
    clock: list[float], monkeypatch: pytest.MonkeyPatch
):
    """Single flight: a slow check (a Redis partition makes one cache read wait for the
    client's timeouts and retries, seconds) delays the one caller that runs it, not every
    request of the process queued on the cache's lock."""
    make_flag("checkout.new-flow")
    publish()
    assert flagapp.evaluate("checkout.new-flow", False).value is True
    entered, release = threading.Event(), threading.Event()

    def slow(env: str) -> tuple[int, str]:
        entered.set()
        release.wait(10)
        return 1, "unchanged"

    monkeypatch.setattr(evaluation_cache, "published_version", slow)
    clock[0] += 1.1
    checker = threading.Thread(target=flagapp.evaluate, args=("checkout.new-flow", False))
    checker.start()
    try:
        assert entered.wait(5)
        answers: list[Any] = []
        other = threading.Thread(
            target=lambda: answers.append(flagapp.evaluate("checkout.new-flow", False).value)
        )
        other.start()
        other.join(3)
        assert answers == [True]  # answered while the check is still running
    finally:
        release.set()
        checker.join(5)


def test_attribute_in_use__incremental_parse__changed_flag_walked_again() -> None:
    """The attributes a held ruleset reads are worked out per flag and reused for flags an
    incremental parse shared; a flag that changed is walked again."""
    from openfeature_provider.engine import parse_ruleset

    def doc(version: int, attr: str) -> dict[str, Any]:
        rule = {"id": "r", "when": [{"attr": attr, "op": "eq", "values": ["x"]}],
                "serve": {"variant": "on"}}  # fmt: skip
        flags = {
            key: {"kind": "boolean", "enabled": True, "variants": {"on": True, "off": False},
                  "rules": [rule if key == "a.changed" else {**rule, "when": [
                      {"attr": "plan", "op": "eq", "values": ["x"]}]}],
                  "fallthrough": {"variant": "off"}}
            for key in ("a.changed", "b.same")
        }  # fmt: skip
        return {"format": 1, "environment": "attrs", "version": version, "etag": f"e{version}",
                "flags": flags, "segments": {}}  # fmt: skip

    first = parse_ruleset(doc(1, "country"))
    evaluation.install("attrs", first)
    assert evaluation.attribute_in_use("country", "attrs")
    second = parse_ruleset(doc(2, "email"), previous=first)
    assert second.flags["b.same"].rules is first.flags["b.same"].rules  # shared
    evaluation.install("attrs", second)
    assert evaluation.attribute_in_use("email", "attrs")
    assert not evaluation.attribute_in_use("country", "attrs")
    assert evaluation.attribute_in_use("plan", "attrs")
    evaluation.clear_cache("attrs")


def _two_versions() -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from openfeature_provider.engine import parse_ruleset
    from openfeature_provider.engine.delta import make_delta

    def doc(version: int, enabled: bool) -> dict[str, Any]:
        flags = {
            f"f.{i}": {"kind": "boolean", "enabled": enabled if i == 0 else True,
                       "variants": {"on": True, "off": False}, "fallthrough": {"variant": "on"}}
            for i in range(3)
        }  # fmt: skip
        return {"format": 1, "environment": "deltas", "version": version,
                "etag": f"sha256:v{version}", "flags": flags, "segments": {}}  # fmt: skip

    held = parse_ruleset(doc(1, True))
    return held, doc(2, False), make_delta(doc(1, True), doc(2, False))


def test_apply_delta__held_ruleset_is_the_base__new_version_installed_without_a_query(
    django_assert_num_queries: Any,
) -> None:
    """A process that did not publish takes the new version from the announced delta: the
    engine compiles what changed, no document is loaded or parsed whole."""
    held, _doc, delta = _two_versions()
    evaluation.install("deltas", held)
    with django_assert_num_queries(0):
        assert evaluation.apply_delta("deltas", json.dumps(delta), 2) is True
        current = evaluation.get_ruleset("deltas")
    assert current is not None and current.version == 2
    assert current.flags["f.0"].enabled is False
    assert current.flags["f.1"] is held.flags["f.1"]  # shared, not rebuilt
    evaluation.clear_cache("deltas")


def test_apply_delta__other_base__held_ruleset_expired_not_replaced() -> None:
    held, _doc, delta = _two_versions()
    delta["base"]["etag"] = "sha256:someone-else"
    evaluation.install("deltas", held)
    assert evaluation.apply_delta("deltas", delta, 2) is False
    assert evaluation.current_ruleset("deltas") is held
    assert not evaluation.is_warm("deltas")  # the next use checks the store
    evaluation.clear_cache("deltas")
