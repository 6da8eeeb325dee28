"""The publish outbox (flagapp.publishing): the need to publish commits with the change, a
failure after COMMIT never reaches the author of the write, and what it leaves behind is
published by the reconciler.

Issue 10 finding 1: a change committed but never published (the API answered 500, the retry
409, and the ruleset kept serving the old flag).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from flagapp import evaluation, publishing, reconciler, services
from flagapp.models import Environment, FlagState, PublishOutbox, Snapshot
from flagapp.services import sdk_keys
from tests.flagapp.api_support import *  # noqa: F403 - fixtures
from tests.flagapp.api_support import write_headers

pytestmark = pytest.mark.django_db

STATE_URL = "/api/v1/flags/checkout.new-flow/environments/"


def _outbox(env: Environment) -> int:
    return PublishOutbox.objects.filter(environment=env).count()


class PostCommitFault:
    """Makes every post-commit publish raise (as a connection dropped right after COMMIT
    would) once switched on; the reconciler's own publish is untouched."""

    def __init__(self) -> None:
        self.on = True
        self.calls = 0


@pytest.fixture
def failing_publish(monkeypatch: pytest.MonkeyPatch) -> PostCommitFault:
    fault = PostCommitFault()
    real_after_commit = publishing._after_commit

    def broken(ids: list[int], using: str) -> None:
        if not fault.on:
            real_after_commit(ids, using)
            return
        fault.calls += 1
        original = publishing.publish

        def raising(env: Environment, **kwargs: Any) -> Any:
            raise ConnectionError("server closed the connection unexpectedly")

        publishing.publish = raising  # type: ignore[assignment]
        try:
            publishing.drain(ids, using=using)
        finally:
            publishing.publish = original  # type: ignore[assignment]

    monkeypatch.setattr(publishing, "_after_commit", broken)
    return fault


def test_record__write_rolled_back__no_outbox_row(make_flag: Any, envs: dict[str, Any]) -> None:
    """The row is written in the change's own transaction: no change, no row."""
    before = PublishOutbox.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        make_flag()
        assert PublishOutbox.objects.count() > before
        raise RuntimeError("roll back")
    assert PublishOutbox.objects.count() == before


def test_record__write_not_yet_committed__row_per_affected_environment(
    make_flag: Any, envs: dict[str, Any]
) -> None:
    PublishOutbox.objects.all().delete()
    flag = make_flag()  # the test transaction never commits: nothing published yet
    assert {r.environment_id for r in PublishOutbox.objects.all()} == {e.pk for e in envs.values()}
    PublishOutbox.objects.all().delete()
    services.set_flag_enabled(flag, envs["staging"], True, actor=None, reason="x")
    assert list(PublishOutbox.objects.values_list("environment_id", flat=True)) == [
        envs["staging"].pk
    ]


def test_after_commit__publish_succeeds__outbox_cleared_and_snapshot_published(
    make_flag: Any, envs: dict[str, Any], committed: Any
) -> None:
    with committed():
        make_flag()
    assert PublishOutbox.objects.count() == 0
    assert {s.environment.key for s in Snapshot.objects.all()} == set(envs)


def test_after_commit__many_writes_one_transaction__each_environment_published_once(
    make_flag: Any, envs: dict[str, Any], committed: Any
) -> None:
    with committed():
        for i in range(5):
            make_flag(f"checkout.flag-{i}")
    assert Snapshot.objects.filter(environment=envs["production"]).count() == 1
    assert PublishOutbox.objects.count() == 0


def test_after_commit__publish_raises__write_kept_row_stays_no_exception(
    make_flag: Any,
    envs: dict[str, Any],
    committed: Any,
    failing_publish: PostCommitFault,
    caplog: Any,
) -> None:
    with caplog.at_level("ERROR", logger="flagapp"), committed():
        make_flag()  # no exception reaches the caller
    assert failing_publish.calls == 1
    assert "the reconciler will publish it" in caplog.text
    assert Snapshot.objects.count() == 0
    assert {r.environment_id for r in PublishOutbox.objects.all()} == {e.pk for e in envs.values()}


def test_reconcile__publish_failed_after_commit__republished_and_ruleset_serves_change(
    make_flag: Any, envs: dict[str, Any], committed: Any, failing_publish: PostCommitFault
) -> None:
    """The whole story of finding 1, in one process: the kill switch is saved, its publish
    fails, the ruleset endpoint keeps serving the flag on; ``flagapp_reconcile`` heals it."""
    from django.core.management import call_command

    env = envs["production"]
    failing_publish.on = False
    with committed():
        flag = make_flag()
        services.set_flag_enabled(flag, env, True, actor=None, reason="launch")
    _key, token = sdk_keys.create_sdk_key(env, name="tests", actor=None, reason="tests")
    client = Client()

    def served_enabled() -> bool:
        evaluation.clear_cache()
        response = client.get("/sdk/v1/ruleset", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200
        return bool(json.loads(response.content)["flags"]["checkout.new-flow"]["enabled"])

    assert served_enabled()
    failing_publish.on = True
    with committed():
        services.set_flag_enabled(flag, env, False, actor=None, reason="incident: kill")
    assert FlagState.objects.get(flag=flag, environment=env).enabled is False
    assert _outbox(env) == 1
    assert served_enabled()  # the bug: saved, not served

    with committed():  # the command's own transactions commit (here: the test's savepoint)
        out = _call(call_command, "flagapp_reconcile")
    newest = publishing.latest("production")
    assert newest is not None
    assert out.splitlines() == [f"production: published v2 ({newest.etag})"]
    assert _outbox(env) == 0
    assert not served_enabled()


def test_reconcile__nothing_to_do__publishes_nothing_and_says_so(
    make_flag: Any, envs: dict[str, Any], committed: Any, django_assert_max_num_queries: Any
) -> None:
    from django.core.management import call_command

    with committed():
        make_flag()
    before = list(Snapshot.objects.values_list("pk", "version"))
    out = _call(call_command, "flagapp_reconcile")
    assert out.strip() == "nothing to republish (3 environment(s) up to date)"
    assert list(Snapshot.objects.values_list("pk", "version")) == before
    result = publishing.reconcile()
    assert (result.republished, result.reannounced, result.failed) == ([], [], [])


def test_reconcile__change_written_around_the_services__content_hash_differs__republished(
    make_flag: Any, envs: dict[str, Any], committed: Any
) -> None:
    """Versions alone cannot see a change that left no outbox row (a raw UPDATE, a restored
    backup): the reconciler compares content hashes."""
    with committed():
        flag = make_flag()
    FlagState.objects.filter(flag=flag, environment=envs["staging"]).update(enabled=True)
    assert PublishOutbox.objects.count() == 0
    result = publishing.reconcile()
    assert [(k, v) for k, v, _ in result.republished] == [("staging", 2)]
    assert publishing.latest("staging").data["flags"]["checkout.new-flow"]["enabled"] is True  # type: ignore[union-attr]


def test_reconcile__environment_never_published__first_snapshot_stored(
    envs: dict[str, Any],
) -> None:
    result = publishing.reconcile()
    assert sorted(k for k, _, _ in result.republished) == sorted(envs)
    assert PublishOutbox.objects.count() == 0


def test_reconcile__shared_cache_pointer_behind__reannounced(
    make_flag: Any, envs: dict[str, Any], committed: Any
) -> None:
    """The snapshot committed but its announcement was lost (cache outage, process death
    between the two): the reconciler sets the pointer again."""
    from django.core.cache import caches

    with committed():
        make_flag()
    snap = publishing.latest("production")
    assert snap is not None
    cache = caches["default"]
    cache.set(publishing.cache_version_key("production"), snap.version - 1, None)
    result = publishing.reconcile()
    assert result.reannounced == [("production", snap.version)]
    assert cache.get(publishing.cache_version_key("production")) == snap.version


def test_announce__receiver_raises__logged_not_raised(
    make_flag: Any, envs: dict[str, Any], committed: Any, caplog: Any
) -> None:
    from flagapp.signals import snapshot_published

    def bad(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    snapshot_published.connect(bad)
    try:
        with caplog.at_level("ERROR", logger="flagapp"), committed():
            make_flag()
    finally:
        snapshot_published.disconnect(bad)
    assert "receiver" in caplog.text
    assert publishing.latest("production") is not None


def test_announce__carries_parsed_ruleset__evaluation_installs_that_object(
    make_flag: Any, envs: dict[str, Any], committed: Any
) -> None:
    """Issue 12: the environment is parsed once per change, by the publisher; the in-process
    receiver installs the very Ruleset the signal carries (a second parse would install an
    equal but different object)."""
    from flagapp.signals import snapshot_published
    from openfeature_provider.engine import Ruleset

    received: dict[str, Any] = {}

    def spy(sender: Any, **kwargs: Any) -> None:
        received[kwargs["environment_key"]] = kwargs.get("ruleset")

    snapshot_published.connect(spy)
    try:
        with committed():
            make_flag()
    finally:
        snapshot_published.disconnect(spy)
    assert set(received) == set(envs)
    assert all(isinstance(r, Ruleset) for r in received.values())
    assert evaluation.current_ruleset("production") is received["production"]


def test_api_patch_state__publish_fails_after_commit__200_then_identical_retry_200_not_409(
    admin_client: Any,
    api_flag: Any,
    envs: dict[str, Any],
    committed: Any,
    failing_publish: PostCommitFault,
) -> None:
    """ "A client whose write committed always learns that it committed": the post-commit
    failure is not a 500, and a retry with the now stale If-Match succeeds idempotently."""
    failing_publish.on = False
    with committed():
        api_flag()
    failing_publish.on = True
    version = admin_client.get(f"{STATE_URL}staging/").json()["version"]
    with committed():
        first = admin_client.patch(
            f"{STATE_URL}staging/", {"enabled": True}, format="json", **write_headers(version)
        )
    assert first.status_code == 200, first.content
    assert first.json()["version"] == version + 1
    retry = admin_client.patch(
        f"{STATE_URL}staging/", {"enabled": True}, format="json", **write_headers(version)
    )
    assert retry.status_code == 200, retry.content
    assert retry.json()["version"] == version + 1
    assert retry["ETag"] == f'"{version + 1}"'
    assert _outbox(envs["staging"]) == 1
    publishing.reconcile()
    assert _outbox(envs["staging"]) == 0


def test_api_patch_state__stale_version_different_content__still_409(
    admin_client: Any, api_flag: Any
) -> None:
    api_flag()
    version = admin_client.get(f"{STATE_URL}staging/").json()["version"]
    ok = admin_client.patch(
        f"{STATE_URL}staging/", {"enabled": True}, format="json", **write_headers(version)
    )
    assert ok.status_code == 200
    stale = admin_client.patch(
        f"{STATE_URL}staging/", {"enabled": False}, format="json", **write_headers(version)
    )
    assert stale.status_code == 409


def test_update_flag_state__stale_version_same_content__returns_current_state(
    make_flag: Any, envs: dict[str, Any]
) -> None:
    flag = make_flag()
    env = envs["staging"]
    state = services.set_flag_enabled(flag, env, True, actor=None, reason="x", expected_version=1)
    again = services.set_flag_enabled(
        flag, env, True, actor=None, reason="retry", expected_version=1
    )
    assert again.version == state.version == 2


def test_periodic_tasks__reconcile_listed_and_runs_from_run_tasks(
    make_flag: Any, envs: dict[str, Any]
) -> None:
    from django.core.management import call_command

    from flagapp.tasks import PERIODIC_TASKS

    _task, interval = PERIODIC_TASKS["reconcile_snapshots"]
    assert interval <= 30
    make_flag()  # not committed here: only the outbox knows
    out = _call(call_command, "flagapp_run_tasks", "reconcile_snapshots")
    result = json.loads(out.split(": ", 1)[1])
    assert sorted(r["environment"] for r in result["republished"]) == sorted(envs)


def test_on_server_request__test_client__reconciler_not_started(
    admin_client: Any, envs: dict[str, Any]
) -> None:
    reconciler.stop_reconciler()
    try:
        admin_client.get("/api/v1/environments/")
        assert reconciler._reconciler is None
    finally:
        reconciler.stop_reconciler()


@pytest.mark.parametrize(
    ("celery", "flagapp", "expected"),
    [
        ({"CELERY_TASK_ALWAYS_EAGER": True}, {}, True),
        ({"CELERY_TASK_ALWAYS_EAGER": False, "CELERY_BROKER_URL": "redis://x"}, {}, False),
        ({"CELERY_TASK_ALWAYS_EAGER": True}, {"RECONCILE_INTERVAL": 0}, False),
        (
            {"CELERY_TASK_ALWAYS_EAGER": False, "CELERY_BROKER_URL": "redis://x"},
            {"RECONCILE_IN_PROCESS": True},
            True,
        ),
    ],
)
def test_in_process_wanted__celery_and_settings__decides(
    settings: Any, celery: dict[str, Any], flagapp: dict[str, Any], expected: bool
) -> None:
    for name, value in celery.items():
        setattr(settings, name, value)
    settings.FLAGAPP = {**settings.FLAGAPP, **flagapp}
    assert reconciler.in_process_wanted() is expected


def test_on_server_request__wsgi_handler_embedded_default__reconciler_started_once(
    settings: Any,
) -> None:
    from django.core.handlers.wsgi import WSGIHandler

    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.FLAGAPP = {**settings.FLAGAPP, "RECONCILE_INTERVAL": 3600}
    reconciler.stop_reconciler()
    try:
        reconciler.on_server_request(sender=WSGIHandler)
        first = reconciler._reconciler
        reconciler.on_server_request(sender=WSGIHandler)
        assert first is not None and first.is_alive() and first.interval == 3600
        assert reconciler._reconciler is first
    finally:
        reconciler.stop_reconciler()
    assert not first.is_alive()


def _call(call_command: Callable[..., Any], *args: Any) -> str:
    import io

    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_drain__connection_unusable_after_failure__closed_so_next_query_reconnects(
    make_flag: Any, envs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After COMMIT the connection may be dead; the response still needs the database."""
    from django.db import connections

    closed: list[bool] = []
    wrapper = connections["default"]  # the wrapper itself, not the proxy
    monkeypatch.setattr(wrapper, "close_if_unusable_or_obsolete", lambda: closed.append(True))

    def raising(env: Environment, **kwargs: Any) -> Any:
        raise ConnectionError("gone")

    monkeypatch.setattr(publishing, "publish", raising)
    make_flag()
    # After COMMIT the caller is outside any transaction (the test's own is still open).
    monkeypatch.setattr(wrapper, "in_atomic_block", False)
    assert publishing.drain([envs["staging"].pk]) == []
    monkeypatch.undo()
    assert closed == [True]
