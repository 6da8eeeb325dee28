"""The reconciler heals what a failed post-commit publish left behind (issue 10 finding 1).

* A real process dies between COMMIT and publish; a real server (uvicorn, the embedded
  default: no Celery broker, so its in-process reconciler thread runs) serves the change
  within one reconcile interval. SQLite (a file both processes share) and PostgreSQL (the
  test database, ``FLAGAPP_TEST_DB=postgres``).
* The in-process reconciler thread heals a committed-but-unpublished change on its first
  pass.
* Two reconcilers at once on PostgreSQL store one new version, never two.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection

from flagapp import publishing, reconciler, services
from flagapp.models import FlagState, PublishOutbox, Snapshot
from tests.support.processes import free_port, uvicorn_argv

REPO = Path(__file__).resolve().parents[2]
POSTGRES = os.environ.get("FLAGAPP_TEST_DB") == "postgres"
#: The server's reconcile interval in the process test (the default is 30 s; set
#: FLAGAPP_TEST_RECONCILE_INTERVAL=30 to measure the default's heal time).
INTERVAL = float(os.environ.get("FLAGAPP_TEST_RECONCILE_INTERVAL", "1.0"))


def _wait_for(predicate: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def shared_settings(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A settings module every child process uses, on a database they all share: the
    PostgreSQL test database, or a SQLite file (an in-memory database is per process)."""
    module = f"flagapp_reconcile_settings_{uuid.uuid4().hex[:8]}"
    if POSTGRES:
        databases = {"default": {**_pg_settings(), "NAME": connection.settings_dict["NAME"]}}
    else:
        databases = {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(tmp_path / "flagapp.sqlite3"),
                "OPTIONS": {"timeout": 20},
            }
        }
    (tmp_path / f"{module}.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        f"DATABASES = {databases!r}\n"
        "CELERY_TASK_ALWAYS_EAGER = True  # the embedded default: no beat\n"
        f"FLAGAPP = {{'ENVIRONMENT': 'production', 'SINGLE_PROCESS': True,\n"
        f"           'RECONCILE_INTERVAL': {INTERVAL!r}}}\n"
    )
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
        DJANGO_SETTINGS_MODULE=module,
        RECONCILE_CHILD_MIGRATE="0" if POSTGRES else "1",
    )
    yield env


def _pg_settings() -> dict[str, Any]:
    keys = ("ENGINE", "USER", "PASSWORD", "HOST", "PORT")
    return {k: connection.settings_dict[k] for k in keys}


def _child(env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.flagapp.reconcile_child", command],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def server(shared_settings: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        uvicorn_argv(port),
        env=shared_settings,
        cwd=str(REPO),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, "uvicorn exited"
            try:
                httpx.get(f"{url}/admin/login/", timeout=2)
                return True
            except httpx.HTTPError:
                return False

        assert _wait_for(up, 90), "uvicorn did not start"  # a loaded CI machine
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(int(120 + 25 * INTERVAL))
def test_reconciler__process_killed_between_commit_and_publish__server_heals_within_interval(
    shared_settings: dict[str, str], request: pytest.FixtureRequest
) -> None:
    setup = _child(shared_settings, "setup")
    assert setup.returncode == 0, setup.stderr
    token = json.loads(setup.stdout.strip().splitlines()[-1])["token"]
    url = request.getfixturevalue("server")  # its first request started the reconciler
    headers = {"Authorization": f"Bearer {token}"}

    def served_enabled() -> bool:
        response = httpx.get(f"{url}/sdk/v1/ruleset", headers=headers, timeout=5)
        assert response.status_code == 200, response.text
        return bool(response.json()["flags"]["checkout.new-flow"]["enabled"])

    assert served_enabled()
    died = _child(shared_settings, "kill-and-die")
    killed_at = time.monotonic()
    assert died.returncode == 3, (died.returncode, died.stderr)
    # Committed, not published: only the outbox row (and the reconciler) know.
    assert _wait_for(lambda: not served_enabled(), within=20 * INTERVAL + 10)
    healed_after = time.monotonic() - killed_at
    print(f"\nhealed {healed_after:.2f} s after the process died (interval {INTERVAL:g} s)")
    if POSTGRES:
        assert PublishOutbox.objects.count() == 0
        # created (v1), flag (v2), on (v3), killed and healed (v4): no duplicate.
        versions = Snapshot.objects.filter(environment__key="production").values_list(
            "version", flat=True
        )
        assert sorted(versions) == [1, 2, 3, 4]


@pytest.mark.django_db(transaction=True)
def test_reconciler_thread__committed_change_left_unpublished__healed_on_first_pass(
    make_flag: Any, envs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded default's thread: no Celery, no cron; the server heals itself."""
    flag = make_flag()
    publishing.reconcile()  # a clean start: every environment published
    monkeypatch.setattr(publishing, "_after_commit", lambda ids, using: None)  # publish lost
    services.set_flag_enabled(flag, envs["staging"], True, actor=None, reason="x")
    assert PublishOutbox.objects.count() == 1
    before = publishing.latest("staging")
    assert before is not None
    passes: list[publishing.ReconcileResult] = []
    real_reconcile = publishing.reconcile

    def recording_reconcile(**kwargs: Any) -> publishing.ReconcileResult:
        result = real_reconcile(**kwargs)
        passes.append(result)
        return result

    monkeypatch.setattr(publishing, "reconcile", recording_reconcile)
    thread = reconciler.start_reconciler(interval=0.2)
    try:
        assert _wait_for(lambda: len(passes) >= 1, within=60)
    finally:
        # Stopped before this thread reads: SQLite's shared-cache test database answers
        # "database table is locked" at once (no busy wait) to a read racing the next pass.
        reconciler.stop_reconciler(timeout=30)
    assert not thread.is_alive()
    # The first pass heals it: (environment, new version) republished.
    assert [(k, v) for k, v, _ in passes[0].republished] == [("staging", before.version + 1)]
    newest = publishing.latest("staging")
    assert newest is not None and newest.version == before.version + 1
    assert newest.data["flags"][flag.key]["enabled"] is True
    assert PublishOutbox.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_reconcile__two_reconcilers_at_once_on_postgres__one_new_version(
    make_flag: Any, envs: dict[str, Any]
) -> None:
    if not POSTGRES:
        pytest.skip("needs PostgreSQL (FLAGAPP_TEST_DB=postgres): row locks")
    flag = make_flag()
    publishing.reconcile()
    before = {e: publishing.latest(e).version for e in envs}  # type: ignore[union-attr]
    # Around the services (no outbox row): only the content hash says it changed.
    FlagState.objects.filter(flag=flag).update(enabled=True)
    barrier = threading.Barrier(4)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        from django.db import connections

        try:
            barrier.wait(10)
            results.append(publishing.reconcile())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    for env in envs:
        versions = list(
            Snapshot.objects.filter(environment__key=env).values_list("version", flat=True)
        )
        assert max(versions) == before[env] + 1 and len(set(versions)) == len(versions)
    republished = [r for result in results for r in result.republished]
    assert len(republished) == len(envs)  # each environment once, by one of the four
    assert all(not result.failed for result in results)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_publish__slow_compile_holds_environment_lock__writers_not_blocked(
    make_flag: Any, envs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write inserts outbox rows (a foreign key to the environment); a publisher compiling
    the same environment must not make it wait: the publisher's lock is FOR NO KEY UPDATE."""
    if not POSTGRES:
        pytest.skip("needs PostgreSQL (FLAGAPP_TEST_DB=postgres): row locks")
    from django.db import connections, transaction

    flag = make_flag()
    env = envs["staging"]
    compiling = threading.Event()
    release = threading.Event()
    real_compile = publishing.compile_entries

    def slow_compile(environment: Any, **kwargs: Any) -> Any:
        compiling.set()
        release.wait(30)
        return real_compile(environment, **kwargs)

    monkeypatch.setattr(publishing, "compile_entries", slow_compile)
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            publishing.publish(env)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        assert compiling.wait(10)
        monkeypatch.setattr(publishing, "_after_commit", lambda ids, using: None)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            services.set_flag_enabled(flag, env, True, actor=None, reason="during a publish")
    finally:
        release.set()
        thread.join(30)
    assert errors == []
    assert PublishOutbox.objects.filter(environment=env).exists()
