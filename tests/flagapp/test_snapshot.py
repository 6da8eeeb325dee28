"""flagapp.snapshot: compile, publish (version, ETag, cache, signal), latest, query bounds,
and the end-to-end path models -> snapshot -> engine."""

from __future__ import annotations

import json
import threading
from typing import Any

import jsonschema
import pytest
from django.core.cache import caches
from django.db import connection

from flagapp import services, snapshot
from flagapp.conf import namespace
from flagapp.models import Environment, Flag, FlagState, Snapshot
from flagapp.signals import snapshot_published
from openfeature_provider.engine import evaluate, load_schema, parse_ruleset

pytestmark = pytest.mark.django_db

PRO_RULE = {"when": [{"attr": "plan", "op": "in", "values": ["pro"]}], "serve": {"variant": "on"}}


def test_compile_environment__configured_flags__valid_against_schema_and_parser(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag()
    make_flag("ui.banner.text", kind="string", variants={"a": "Hello", "b": "Hi"})
    services.create_segment(
        key="beta",
        name="Beta",
        include=["u1"],
        actor=None,
        reason="x",
        conditions=[{"attr": "email", "op": "ends_with", "values": ["@example.com"]}],
    )
    services.update_flag_state(
        flag,
        envs["production"],
        actor=None,
        reason="x",
        enabled=True,
        rules=[
            PRO_RULE,
            {
                "id": "beta",
                "when": [{"op": "in_segment", "values": ["beta"]}],
                "serve": {
                    "rollout": {
                        "weights": [{"variant": "on", "weight": 1}, {"variant": "off", "weight": 9}]
                    }
                },
            },
        ],
    )
    doc = snapshot.compile_environment(envs["production"], version=3)
    jsonschema.validate(doc, load_schema())
    ruleset = parse_ruleset(doc)
    assert ruleset.version == 3 and set(ruleset.flags) == {"checkout.new-flow", "ui.banner.text"}
    entry = doc["flags"]["checkout.new-flow"]
    assert [r["id"] for r in entry["rules"]] == ["r1", "beta"]
    assert entry["metadata"]["owner"] == "payments"
    assert entry["metadata"]["type"] == "release"
    assert entry["metadata"]["version"] == 2
    assert doc["segments"]["beta"]["include"] == ["u1"]


def test_compile_environment__many_flags__bounded_queries(
    make_flag: Any, envs: dict[str, Environment], django_assert_max_num_queries: Any
) -> None:
    for i in range(30):
        flag = make_flag(f"team.flag-{i}")
        services.update_flag_state(
            flag, envs["production"], actor=None, reason="x", enabled=True, rules=[PRO_RULE]
        )
    with django_assert_max_num_queries(7):
        doc = snapshot.compile_environment(envs["production"])
    assert len(doc["flags"]) == 30


def test_compile_environment__flag_without_state_here__compiled_disabled(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag()
    FlagState.objects.filter(flag=flag, environment=envs["staging"]).delete()
    entry = snapshot.compile_environment(envs["staging"])["flags"][flag.key]
    assert entry["enabled"] is False and entry["metadata"]["version"] == 0


def test_compute_etag__same_content_any_version__same_etag(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    make_flag()
    a = snapshot.compile_environment(envs["staging"], version=1)
    b = snapshot.compile_environment(envs["staging"], version=9)
    assert a["etag"] == b["etag"] and a["etag"].startswith("sha256:")
    assert len(a["etag"]) == len("sha256:") + 64


def test_publish__first_and_changed__versions_count_up(
    make_flag: Any, envs: dict[str, Environment], committed: Any
) -> None:
    env = envs["production"]
    first = snapshot.publish(env)
    flag = make_flag()
    second = snapshot.publish(env)
    third = snapshot.publish(env)  # nothing changed
    services.set_flag_enabled(flag, env, True, actor=None, reason="x")
    fourth = snapshot.publish(env)
    assert (first.version, second.version, fourth.version) == (1, 2, 3)
    assert third.pk == second.pk
    assert first.etag != second.etag != fourth.etag
    assert json.loads(fourth.document)["version"] == 3
    assert json.loads(fourth.document)["etag"] == fourth.etag


def test_publish__committed__cache_keys_set_and_signal_sent(
    make_flag: Any, envs: dict[str, Environment], committed: Any
) -> None:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    snapshot_published.connect(receiver)
    try:
        with committed():
            make_flag()
    finally:
        snapshot_published.disconnect(receiver)
    cache = caches["default"]
    snap = snapshot.latest("production")
    assert snap is not None
    ns = namespace()  # the deployment's namespace is in every key (issue 10 finding 3)
    assert cache.get(f"flagapp:{ns}:snapshot:production:version") == snap.version
    assert cache.get(f"flagapp:{ns}:snapshot:production:{snap.version}") == snap.document
    keys = sorted(r["environment_key"] for r in received)
    assert keys == ["development", "production", "staging"]
    assert all(isinstance(r["snapshot"], Snapshot) for r in received)


def test_publish__inside_uncommitted_transaction__nothing_announced(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    make_flag()
    snapshot.publish(envs["production"])  # the test transaction never commits
    assert caches["default"].get(snapshot.cache_version_key("production")) is None


def test_latest__several_versions__newest_in_one_query(
    make_flag: Any, envs: dict[str, Environment], django_assert_num_queries: Any
) -> None:
    env = envs["staging"]
    snapshot.publish(env)
    flag = make_flag()
    snapshot.publish(env)
    services.set_flag_enabled(flag, env, True, actor=None, reason="x")
    newest = snapshot.publish(env)
    with django_assert_num_queries(1):
        found = snapshot.latest("staging")
    assert found == newest
    assert snapshot.latest("nowhere") is None


def test_publish__end_to_end__engine_serves_what_was_configured(
    make_flag: Any, envs: dict[str, Environment], committed: Any
) -> None:
    env = envs["production"]
    with committed():
        flag = make_flag()
        services.update_flag_state(
            flag, env, actor=None, reason="x", enabled=True, rules=[PRO_RULE]
        )
        make_flag("ui.banner.text", kind="string", variants={"a": "Hello", "b": "Hi"})
    ruleset = parse_ruleset(snapshot.latest("production").document)  # type: ignore[union-attr]
    pro = evaluate(ruleset, "checkout.new-flow", {"targetingKey": "u1", "plan": "pro"})
    free = evaluate(ruleset, "checkout.new-flow", {"targetingKey": "u2", "plan": "free"})
    off = evaluate(ruleset, "ui.banner.text", {"targetingKey": "u1"})
    assert (pro.value, pro.reason, pro.rule_id) == (True, "TARGETING_MATCH", "r1")
    assert (free.value, free.reason) == (False, "DEFAULT")
    assert off.use_default and off.reason == "DISABLED"
    with committed():
        services.set_flag_enabled(flag, env, False, actor=None, reason="kill")
    ruleset = parse_ruleset(snapshot.latest("production").document)  # type: ignore[union-attr]
    killed = evaluate(ruleset, "checkout.new-flow", {"targetingKey": "u1", "plan": "pro"})
    assert killed.use_default and killed.reason == "DISABLED"
    with committed():
        services.archive_flag(flag, actor=None, reason="done")
    ruleset = parse_ruleset(snapshot.latest("production").document)  # type: ignore[union-attr]
    gone = evaluate(ruleset, "checkout.new-flow", {"targetingKey": "u1"})
    assert gone.error_code == "FLAG_NOT_FOUND"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_publish__concurrent_publishers__distinct_consecutive_versions(
    owner_group: Any,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (FLAGAPP_TEST_DB=postgres): row locks")
    env = services.create_environment(key="production", name="P", actor=None, reason="x")
    services.create_flag(
        key="team.flag-a", name="a", owner=owner_group, flag_type="ops", actor=None, reason="x"
    )
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            services.create_flag(
                key=f"team.flag-t{i}",
                name="t",
                owner=owner_group,
                flag_type="ops",
                actor=None,
                reason="x",
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            from django.db import connection as conn

            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    versions = sorted(Snapshot.objects.filter(environment=env).values_list("version", flat=True))
    assert versions == list(range(1, len(versions) + 1))
    latest_doc = json.loads(snapshot.latest("production").document)  # type: ignore[union-attr]
    assert len(latest_doc["flags"]) == 5
    assert Flag.objects.count() == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_update_flag_state__concurrent_same_version__one_wins_one_conflict(
    owner_group: Any,
) -> None:
    from flagapp.exceptions import VersionConflict

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (FLAGAPP_TEST_DB=postgres): row locks")
    env = services.create_environment(key="production", name="P", actor=None, reason="x")
    flag = services.create_flag(
        key="team.flag-a", name="a", owner=owner_group, flag_type="ops", actor=None, reason="x"
    )
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def worker(rules: list[dict[str, Any]]) -> None:
        try:
            barrier.wait(timeout=10)
            services.update_flag_state(
                flag, env, actor=None, reason="race", expected_version=1, rules=rules
            )
            outcomes.append("ok")
        except VersionConflict as exc:
            outcomes.append(f"conflict:{exc.current_version}")
        finally:
            from django.db import connection as conn

            conn.close()

    other = {**PRO_RULE, "serve": {"variant": "off"}}
    threads = [threading.Thread(target=worker, args=(r,)) for r in ([PRO_RULE], [other])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["conflict:2", "ok"]
    assert FlagState.objects.get(flag=flag, environment=env).version == 2


def test_publish__more_than_snapshot_keep__oldest_deleted(
    make_flag: Any, envs: dict[str, Environment]
) -> None:
    from django.test import override_settings

    env = envs["staging"]
    flag = make_flag()
    with override_settings(FLAGAPP={"SNAPSHOT_KEEP": 2, "SINGLE_PROCESS": True}):
        for i in range(4):
            services.set_flag_enabled(flag, env, i % 2 == 0, actor=None, reason="x")
            snapshot.publish(env)
    versions = list(Snapshot.objects.filter(environment=env).values_list("version", flat=True))
    assert sorted(versions) == [3, 4]


def test_publish__one_flag_changed__parsed_incrementally_equal_to_a_full_parse(
    make_flag: Any, envs: dict[str, Environment], committed: Any
) -> None:
    # issue 17: a publish re-validates only what the change touched; the ruleset it sends to
    # the receivers shares the unchanged flags with the previous one and equals a full parse
    env = envs["production"]
    received: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        if kwargs.get("environment_key") == "production":
            received.append(kwargs["ruleset"])

    with committed():
        flag = make_flag()
        services.update_flag_state(
            flag, env, actor=None, reason="x", enabled=True, rules=[PRO_RULE]
        )
        make_flag("ui.banner.text", kind="string", variants={"a": "Hello", "b": "Hi"})
    snapshot_published.connect(receiver)
    try:
        with committed():
            services.set_flag_enabled(flag, env, False, actor=None, reason="kill")
        with committed():
            services.set_flag_enabled(flag, env, True, actor=None, reason="back")
    finally:
        snapshot_published.disconnect(receiver)
    before, after = received
    assert after.flags["ui.banner.text"].variants is before.flags["ui.banner.text"].variants
    assert after.flags["checkout.new-flow"].rules is not before.flags["checkout.new-flow"].rules
    latest = snapshot.latest("production")
    assert latest is not None
    full = parse_ruleset(latest.document)
    assert after == full
    ctx = {"targetingKey": "u1", "plan": "pro"}
    for key in full.flags:
        assert evaluate(after, key, ctx) == evaluate(full, key, ctx)
    assert evaluate(after, "checkout.new-flow", ctx).metadata["snapshotVersion"] == latest.version
