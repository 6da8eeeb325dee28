"""The Celery task (eager in tests) and its registration in the periodic task list."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flagapp import services
from flagapp.rollouts import controller
from flagapp.tasks import PERIODIC_TASKS, advance_rollouts

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_periodic_tasks__rollout_task__registered_every_minute() -> None:
    task, interval = PERIODIC_TASKS["advance_rollouts"]
    assert task is advance_rollouts and interval == 60.0


def test_advance_rollouts__due_plan__stepped_and_counted(
    make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    flag = make_flag("checkout.task-flow")
    env = envs["staging"]
    services.update_flag_state(flag, env, enabled=True, actor=None, reason="on")
    plan = controller.create_plan(flag, env, treatment="on", control="off", min_step_seconds=60)
    controller.start(plan, actor=None, reason="go", now=T0)
    result = advance_rollouts.apply(
        kwargs={"now": (T0 + dt.timedelta(seconds=30)).isoformat()}
    ).get()
    assert result["checked"] == 1 and result["waiting"] == 1
    result = advance_rollouts.apply(
        kwargs={"now": (T0 + dt.timedelta(seconds=61)).isoformat()}
    ).get()
    assert result["advanced"] == 1
    assert result["outcomes"][0]["bps"] == 1000
