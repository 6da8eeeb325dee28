"""The Celery tasks run eagerly (the embedded default) and through flagapp_run_tasks."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import TestCase
from django.utils import timezone

from flagapp import sampling, tasks
from flagapp.models import FlagEvaluationStat
from tests.celery_app import app as celery_app
from tests.flagapp import governance_helpers as h

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean_sampling() -> None:
    sampling.reset()


def test_test_app__configured_from_django_settings__eager() -> None:
    assert celery_app.conf.task_always_eager is True


def test_send_expiry_reminders_task__eager_delay__mails_and_returns_result() -> None:
    team = Group.objects.create(name="payments")
    h.user("alice", groups=(team,))
    h.flag("payments.checkout.v2", team, expires_on=dt.date(2026, 6, 1))
    with TestCase.captureOnCommitCallbacks(execute=True):  # the mail is sent after COMMIT
        result = tasks.send_expiry_reminders.delay("2026-06-01").get(timeout=10)
    assert result["sent"] == [["payments.checkout.v2", "due"]]
    # a duplicate beat run of the same day sends nothing more
    again = tasks.send_expiry_reminders.apply(args=("2026-06-01",)).get()
    assert again["already_sent"] == [["payments.checkout.v2", "due"]]
    assert len(mail.outbox) == 1


def test_fold_evaluation_counts_task__buffered_counts__last_evaluated_stored() -> None:
    h.env("production")
    for _ in range(3):
        sampling.offer("production", "search.fuzzy.v2", None, "on")
    before = timezone.now()
    result = tasks.fold_evaluation_counts.delay().get(timeout=10)
    assert result["evaluations"] == 3
    stat = FlagEvaluationStat.objects.get(flag_key="search.fuzzy.v2")
    assert stat.count == 3
    assert stat.last_evaluated_at is not None
    assert abs((stat.last_evaluated_at - before).total_seconds()) < 60


def test_stale_flag_report_task__eager__report_dict() -> None:
    team = Group.objects.create(name="search")
    h.flag("search.never.old", team, flag_type="ops", created_days_ago=40)
    result = tasks.stale_flag_report.delay(30).get(timeout=10)
    assert result["not_evaluated"] == {"search.never.old": None}
    assert result["mailed_to"] == 0


def test_run_tasks_command__all_tasks__each_reports_a_json_line() -> None:
    team = Group.objects.create(name="search")
    h.user("sam", groups=(team,))
    h.flag("search.due.today", team, expires_on=timezone.localdate())
    out = StringIO()
    with TestCase.captureOnCommitCallbacks(execute=True):  # the mail is sent after COMMIT
        call_command("flagapp_run_tasks", stdout=out)
    lines = dict(line.split(": ", 1) for line in out.getvalue().splitlines())
    assert {"fold_evaluation_counts", "send_expiry_reminders", "stale_flag_report"} <= set(lines)
    assert json.loads(lines["send_expiry_reminders"])["sent"] == [["search.due.today", "due"]]
    assert len(mail.outbox) == 1


def test_run_tasks_command__unknown_name__command_error() -> None:
    with pytest.raises(CommandError, match="unknown task"):
        call_command("flagapp_run_tasks", "nope")


def test_run_tasks_command__list__names_and_intervals() -> None:
    out = StringIO()
    call_command("flagapp_run_tasks", "--list", stdout=out)
    assert "send_expiry_reminders" in out.getvalue()


def test_example_beat_schedule__every_periodic_task__scheduled_by_registered_name() -> None:
    from example_project.celery_app import app as example_app

    try:
        schedule = example_app.conf.beat_schedule
        assert {entry["task"] for entry in schedule.values()} == {
            task.name for task, _ in tasks.PERIODIC_TASKS.values()
        }
        registered = set(example_app.tasks.keys())
        assert {entry["task"] for entry in schedule.values()} <= registered
        assert schedule["flagapp.send_expiry_reminders"]["schedule"] == 3600.0
    finally:
        celery_app.set_current()


def test_fold_evaluation_counts_task__flagapp_evaluate_usage__last_evaluated_stored(
    make_flag: Any, envs: dict[str, Any], committed: Any
) -> None:
    from flagapp import evaluation
    from flagapp.testutils import reset_flag_cache

    reset_flag_cache()
    evaluation.flush_usage()  # start from an empty buffer
    with committed():
        make_flag("search.fuzzy.v3")
    for i in range(4):
        evaluation.evaluate(
            "search.fuzzy.v3", False, {"targetingKey": f"u{i}"}, environment="production"
        )
    tasks.fold_evaluation_counts.delay().get(timeout=10)
    stat = FlagEvaluationStat.objects.get(flag_key="search.fuzzy.v3", environment__key="production")
    assert stat.count == 4 and stat.last_evaluated_at is not None
