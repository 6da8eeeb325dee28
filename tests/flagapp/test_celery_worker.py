"""The periodic tasks through a real Celery worker on Redis, against PostgreSQL.

A worker is another process: it cannot see SQLite's in-memory database nor an open test
transaction, so these tests need ``FLAGAPP_TEST_DB=postgres`` and commit their rows
(``transaction=True``). The worker is ``python -m celery -A tests.celery_app worker``
pointed at the pytest-django test database; each run uses its own queue so parallel runs
on the same Redis do not steal each other's messages.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.contrib.auth.models import Group
from django.db import connection

from flagapp.models import NotificationDelivery, NotificationEvent, ReminderLog, WebhookEndpoint
from flagapp.notifications import signing
from tests.flagapp import governance_helpers as h
from tests.flagapp.webhook_receiver import running_receiver

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

BROKER = os.environ.get("FLAGAPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
ROOT = Path(__file__).resolve().parents[2]


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[Celery, str]]:
    if connection.vendor != "postgresql":
        pytest.skip("a worker process needs FLAGAPP_TEST_DB=postgres")
    if not _redis_up():
        pytest.skip("Redis is not reachable at 127.0.0.1:6379")
    queue = f"flagapp-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "FLAGAPP_TEST_DB": "postgres",
        # the worker connects straight to the database pytest-django created
        "FLAGAPP_TEST_PG_NAME": str(connection.settings_dict["NAME"]),
        "FLAGAPP_CELERY_BROKER": BROKER,
        # webhook retries 1 s, 2 s, ... instead of 30 s, 60 s, ...
        "FLAGAPP_TEST_WEBHOOK_BACKOFF": "1",
    }
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery_app",
            "worker",
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"{queue}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = Celery("flagapp_test_client", broker=BROKER, backend=BROKER)
    client.conf.update(task_default_queue=queue, broker_connection_retry_on_startup=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # bounded: wait until the worker answers a ping
            if proc.poll() is not None:
                pytest.fail(f"worker exited: {(tmp_path / 'worker.log').read_text()[-3000:]}")
            replies = client.control.ping(
                destination=[f"{queue}@{socket.gethostname()}"], timeout=1.0
            )
            if replies:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"worker not ready: {(tmp_path / 'worker.log').read_text()[-3000:]}")
        yield client, queue
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        client.close()


def test_worker__reminder_task_twice_at_once__one_log_row_and_one_already_sent(
    worker: tuple[Celery, str],
) -> None:
    client, queue = worker
    team = Group.objects.create(name="payments")
    h.user("alice", groups=(team,))
    h.flag("payments.checkout.v2", team, expires_on=dt.date(2026, 6, 1))
    name = "flagapp.tasks.send_expiry_reminders"
    first = client.send_task(name, args=["2026-06-01"], queue=queue)
    duplicate = client.send_task(name, args=["2026-06-01"], queue=queue)  # a duplicate beat
    results = [first.get(timeout=60), duplicate.get(timeout=60)]
    assert results[0]["sent"] == [["payments.checkout.v2", "due"]]
    assert results[1]["sent"] == []
    assert results[1]["already_sent"] == [["payments.checkout.v2", "due"]]
    log = ReminderLog.objects.get()
    assert (log.stage, log.recipients) == ("due", ["alice@example.com"])


def test_worker__stale_report_and_fold_tasks__results_from_the_worker(
    worker: tuple[Celery, str],
) -> None:
    client, queue = worker
    team = Group.objects.create(name="search")
    h.flag("search.never.old", team, flag_type="ops", created_days_ago=40)
    report = client.send_task("flagapp.tasks.stale_flag_report", args=[30], queue=queue)
    assert report.get(timeout=60)["not_evaluated"] == {"search.never.old": None}
    folded = client.send_task("flagapp.tasks.fold_evaluation_counts", queue=queue)
    assert folded.get(timeout=60) == {"pairs": 0, "evaluations": 0, "samples": 0, "events": 0}


def test_worker__webhook_answers_500_then_200__worker_retries_with_backoff_and_delivers(
    worker: tuple[Celery, str],
) -> None:
    from django.utils import timezone

    client, queue = worker
    with running_receiver() as receiver:
        receiver.then("/hook", 500)
        endpoint = WebhookEndpoint.objects.create(name="ci", url=receiver.url + "/hook")
        event = NotificationEvent.objects.create(
            event_type="flag.stale",
            payload={"id": "e1", "type": "flag.stale", "data": {"days": 30}},
        )
        delivery = NotificationDelivery.objects.create(
            event=event, endpoint=endpoint, channel="webhook", next_attempt_at=timezone.now()
        )
        result = client.send_task(
            "flagapp.tasks.deliver_notification", args=[delivery.pk], queue=queue
        )
        outcome = result.get(timeout=60)  # the same task id through its retry
        requests = receiver.requests("/hook")
    assert (outcome["status"], outcome["attempt"], outcome["response_code"]) == (
        "succeeded",
        2,
        200,
    )
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    assert list(delivery.attempt_log.values_list("response_code", flat=True)) == [500, 200]
    assert len(requests) == 2
    for r in requests:
        signing.verify(endpoint.secret, r.headers["flagapp-signature"], r.body)
