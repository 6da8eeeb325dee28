"""``flagapp_run_tasks --loop``: the broker-less scheduler ``make demo`` runs."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def test_run_tasks_loop__intervals__each_task_again_only_when_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flagapp import tasks

    calls: list[str] = []
    monkeypatch.setattr(
        tasks,
        "PERIODIC_TASKS",
        {
            "often": (lambda: calls.append("often") or {"ok": 1}, 0.0),
            "rarely": (lambda: calls.append("rarely") or {"ok": 2}, 3600.0),
        },
    )
    out = io.StringIO()
    call_command("flagapp_run_tasks", "--loop", "--tick", "0.01", "--iterations", "3", stdout=out)
    assert calls.count("often") == 3 and calls.count("rarely") == 1
    assert out.getvalue().splitlines()[0] == 'often: {"ok": 1}'


def test_run_tasks_loop__task_raises__reported_loop_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flagapp import tasks

    def broken() -> Any:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(tasks, "PERIODIC_TASKS", {"broken": (broken, 0.0)})
    err = io.StringIO()
    call_command(
        "flagapp_run_tasks", "--loop", "--tick", "0.01", "--iterations", "2", stderr=err,
        stdout=io.StringIO(),
    )  # fmt: skip
    assert err.getvalue().count("broken: failed: RuntimeError: database is locked") == 2


def test_run_tasks__bad_tick__error_names_option() -> None:
    with pytest.raises(CommandError, match="--tick"):
        call_command("flagapp_run_tasks", "--loop", "--tick", "0")
