"""The notification outbox: a process killed between COMMIT and delivery loses nothing.

A real child process changes a flag through the services and dies with ``os._exit`` right
after COMMIT, before the first delivery attempt (``tests/flagapp/notifications/outbox_child.py``).
Before the outbox the notification was lost for good (the dispatcher's transaction came
after the change's); now the event and its pending delivery committed with the change, and
each sweeper delivers it to the real loopback receiver exactly once: the embedded runner
(``flagapp_run_tasks deliver_due_notifications``, the beat task's function), the reconcile
command (``flagapp_reconcile``) and a real server's in-process reconciler thread (uvicorn,
the embedded default). SQLite (a file every process shares) and PostgreSQL
(``FLAGAPP_TEST_DB=postgres``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.flagapp.test_reconcile import (  # noqa: F401 - fixtures
    INTERVAL,
    REPO,
    _wait_for,
    server,
    shared_settings,
)
from tests.flagapp.webhook_receiver import running_receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


def _run(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _child(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _run(env, "-m", "tests.flagapp.notifications.outbox_child", *args)


def _report(env: dict[str, str]) -> list[dict[str, Any]]:
    out = _child(env, "report")
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout.strip().splitlines()[-1])
    return rows


SWEEPERS = {
    "flagapp_run_tasks": ("-m", "django", "flagapp_run_tasks", "deliver_due_notifications"),
    "flagapp_reconcile": ("-m", "django", "flagapp_reconcile"),
}


@pytest.mark.parametrize("sweeper", [*SWEEPERS, "server-reconciler-thread"])
def test_outbox__process_killed_between_commit_and_delivery__swept_once(
    shared_settings: dict[str, str],  # noqa: F811
    request: pytest.FixtureRequest,
    sweeper: str,
) -> None:
    with running_receiver() as receiver:
        setup = _child(shared_settings, "setup", receiver.url + "/hook")
        assert setup.returncode == 0, setup.stderr
        died = _child(shared_settings, "change-and-die")
        died_at = time.monotonic()
        assert died.returncode == 3, (died.returncode, died.stderr)
        # The change and its notification intent committed together; nothing was sent.
        [row] = _report(shared_settings)
        assert (row["type"], row["operation"], row["status"], row["attempts"]) == (
            "flag.changed",
            "update_flag_state",
            "pending",
            0,
        )
        assert receiver.requests() == []

        if sweeper in SWEEPERS:
            for _ in range(2):  # a second sweep sends nothing more
                swept = _run(shared_settings, *SWEEPERS[sweeper])
                assert swept.returncode == 0, swept.stderr
        else:
            request.getfixturevalue("server")  # its first request starts the thread
            assert _wait_for(lambda: len(receiver.requests()) >= 1, within=30 * INTERVAL + 30)
            print(
                f"\n[outbox] delivered {time.monotonic() - died_at:.2f} s after the process"
                f" died (reconcile interval {INTERVAL:g} s, server start-up included)"
            )
            time.sleep(3 * INTERVAL)  # more passes: nothing sent again

        [sent] = receiver.requests("/hook")
        assert sent.headers["flagapp-event-id"] == row["event_id"]
        assert json.loads(sent.body)["data"]["changes"] == {"enabled": True}
        [after] = _report(shared_settings)
        assert (after["status"], after["attempts"]) == ("succeeded", 1)


# -- in one process -------------------------------------------------------------------------


def test_outbox__change_rolled_back__no_event_and_nobody_called(
    make_flag: Any, envs: dict[str, Any]
) -> None:
    from django.db import transaction

    from flagapp import services
    from flagapp.models import NotificationEvent, WebhookEndpoint

    flag = make_flag("checkout.new-flow")
    with running_receiver() as receiver:
        WebhookEndpoint.objects.create(name="hook", url=receiver.url + "/hook")
        with pytest.raises(RuntimeError), transaction.atomic():
            services.set_flag_enabled(flag, envs["production"], True, actor=None, reason="x")
            assert NotificationEvent.objects.count() == 1  # written with the change...
            raise RuntimeError("the change fails after the write")
        assert NotificationEvent.objects.count() == 0  # ...and rolled back with it
        assert receiver.requests() == []


def test_outbox__dispatcher_fails__change_committed_and_error_logged(
    make_flag: Any,
    envs: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from flagapp import services
    from flagapp.models import FlagState, NotificationEvent, WebhookEndpoint
    from flagapp.notifications import dispatcher

    flag = make_flag("checkout.new-flow")
    WebhookEndpoint.objects.create(name="hook", url="http://127.0.0.1:9/hook")

    def broken(*args: Any, **kwargs: Any) -> None:
        NotificationEvent.objects.create(event_type="flag.changed", payload={})  # half done
        raise RuntimeError("dispatcher bug")

    monkeypatch.setattr(dispatcher, "dispatch", broken)
    services.set_flag_enabled(flag, envs["production"], True, actor=None, reason="x")
    assert FlagState.objects.get(flag=flag, environment=envs["production"]).enabled
    assert NotificationEvent.objects.count() == 0  # its savepoint rolled back, not the change
    assert "could not store the notification of on_flag_changed" in caplog.text
