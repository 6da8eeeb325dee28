"""The rollout task through a real Celery worker on Redis, against PostgreSQL.

Reuses the worker fixture of test_celery_worker.py (a ``celery -A tests.celery_app worker``
process on its own queue); skipped cleanly without PostgreSQL or Redis."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from celery import Celery
from django.contrib.auth.models import Group

from flagapp import services
from flagapp.models import RolloutPlan, SdkEvent
from flagapp.rollouts import controller
from tests.flagapp.test_celery_worker import worker  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]


def _running_plan(key: str, guardrails: list[dict[str, Any]], start: dt.datetime) -> Any:
    owner = Group.objects.get_or_create(name="payments")[0]
    env = services.create_environment(
        key=f"env-{key.split('.')[-1]}", name="x", actor=None, reason="worker test"
    )
    flag = services.create_flag(
        key=key, name=key, owner=owner, flag_type="ops", actor=None, reason="worker test"
    )
    services.update_flag_state(flag, env, enabled=True, actor=None, reason="on")
    plan = controller.create_plan(
        flag, env, treatment="on", control="off", min_step_seconds=60, guardrails=guardrails
    )
    return controller.start(plan, actor=None, reason="worker test", now=start)


def test_worker__advance_rollouts__steps_healthy_plan_and_rolls_back_breaching_one(
    worker: tuple[Celery, str],  # noqa: F811 - the imported fixture
) -> None:
    client, queue = worker
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    healthy = _running_plan("worker.rollout.healthy", [], start)
    bad = _running_plan(
        "worker.rollout.bad",
        [{"metric": "error_rate", "threshold": 0.01, "min_sample": 100}],
        start,
    )
    at = start + dt.timedelta(minutes=1)
    SdkEvent.objects.bulk_create(
        [
            SdkEvent(
                environment=bad.environment,
                kind="exposure",
                key=bad.flag.key,
                flag_key=bad.flag.key,
                variant="on",
                targeting_key=f"u{i}",
                timestamp=at,
            )
            for i in range(200)
        ]
        + [
            SdkEvent(
                environment=bad.environment,
                kind="tracking",
                key="error",
                targeting_key=f"u{i}",
                timestamp=at,
            )
            for i in range(20)
        ]
    )
    result = client.send_task("flagapp.tasks.advance_rollouts", queue=queue).get(timeout=60)
    assert result["checked"] == 2
    assert (result.get("advanced"), result.get("rolled_back")) == (1, 1)
    assert RolloutPlan.objects.get(pk=healthy.pk).current_bps == 1000
    bad = RolloutPlan.objects.get(pk=bad.pk)
    assert bad.state == "rolled_back"
    assert bad.transitions.last().reason == ("automatic rollback: error_rate 10.0% > 1.0% (n=200)")
    assert bad.flag.states.get(environment=bad.environment).fallthrough == {"variant": "off"}


def test_worker__rollout_step_published_by_worker__served_here_within_check_interval(
    worker: tuple[Celery, str],  # noqa: F811 - the imported fixture
    settings: Any,
) -> None:
    """Issue 10 finding 2 with a Celery worker as the other process: this test process and
    the worker each have Django's per-process LocMemCache (the example project's default),
    so nothing the worker caches can reach us; the freshness check (one cheap query per
    ``CACHE_CHECK_INTERVAL``) must bring the worker's publish here within the interval."""
    from flagapp import evaluation, publishing

    settings.FLAGAPP = {**settings.FLAGAPP, "CACHE_CHECK_INTERVAL": 1.0}
    evaluation.clear_cache()
    assert not evaluation.cache_is_shared()
    client, queue = worker
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    plan = _running_plan("worker.rollout.fresh", [], start)
    env_key = plan.environment.key
    held = evaluation.get_ruleset(env_key)
    assert held is not None
    result = client.send_task("flagapp.tasks.advance_rollouts", queue=queue).get(timeout=60)
    assert result.get("advanced") == 1
    published = publishing.latest(env_key)
    assert published is not None and published.version > held.version  # the worker published
    deadline = time.monotonic() + 1.0 + 2.0  # the interval plus a margin for a busy machine
    served = held.version
    while served != published.version and time.monotonic() < deadline:
        time.sleep(0.05)
        current = evaluation.get_ruleset(env_key)
        served = current.version if current is not None else -1
    assert served == published.version, (served, published.version)
    details = evaluation.evaluate(plan.flag.key, False, {"targetingKey": "u1"}, environment=env_key)
    assert details.variant in {"on", "off"} and details.error_code is None, details
