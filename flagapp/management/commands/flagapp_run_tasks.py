"""``manage.py flagapp_run_tasks``: run flagapp's periodic work once, without a broker.

The embedded default has no Celery broker (tasks run eagerly); a cron entry or a systemd
timer calling this command every few minutes does what the beat schedule does in the
production shape. The tasks are the same functions (:data:`flagapp.tasks.PERIODIC_TASKS`),
called in-process.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Run flagapp's periodic tasks once, in this process (no broker needed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "names",
            nargs="*",
            metavar="TASK",
            help="tasks to run (default: all); see --list",
        )
        parser.add_argument("--list", action="store_true", help="list the tasks and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        from flagapp.tasks import PERIODIC_TASKS

        if options["list"]:
            for name, (_, interval) in PERIODIC_TASKS.items():
                self.stdout.write(f"{name}  (every {interval:g} s under beat)")
            return
        names = options["names"] or list(PERIODIC_TASKS)
        unknown = [n for n in names if n not in PERIODIC_TASKS]
        if unknown:
            raise CommandError(f"unknown task(s): {', '.join(unknown)} (see --list)")
        for name in names:
            task, _ = PERIODIC_TASKS[name]
            # .run() calls the task body directly: no broker, no result back-end.
            result = task.run() if hasattr(task, "run") else task()
            self.stdout.write(f"{name}: {json.dumps(result, default=str, sort_keys=True)}")
