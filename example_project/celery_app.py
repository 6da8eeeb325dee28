"""The example project's Celery app and beat schedule.

Run the production shape with a broker::

    CELERY_BROKER_URL=redis://127.0.0.1:6379/1 celery -A example_project worker -l INFO
    CELERY_BROKER_URL=redis://127.0.0.1:6379/1 celery -A example_project beat -l INFO

Without ``CELERY_BROKER_URL`` the settings make tasks run eagerly in-process, and the
periodic work runs with ``python manage.py flagapp_run_tasks`` (from cron, for instance).

The schedule is built from :data:`flagapp.tasks.PERIODIC_TASKS`, the same list the command
runs, so the two ways cannot drift apart. Running a task more often than needed is safe:
reminders are deduplicated in the database and the other tasks are idempotent.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
# Every CELERY_* Django setting configures the app (broker, result back-end, eager mode).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def beat_schedule() -> dict[str, dict[str, Any]]:
    """``{name: {"task": ..., "schedule": seconds}}`` for every periodic flagapp task."""
    from flagapp.tasks import PERIODIC_TASKS

    return {
        f"flagapp.{name}": {"task": task.name, "schedule": interval}
        for name, (task, interval) in PERIODIC_TASKS.items()
    }


app.conf.beat_schedule = beat_schedule()
