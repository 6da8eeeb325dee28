"""``manage.py flagapp_run_tasks [--loop]``: run flagapp's periodic work without a broker.

The embedded default has no Celery broker (tasks run eagerly); a cron entry or a systemd
timer calling this command every few minutes does what the beat schedule does in the
production shape. The tasks are the same functions (:data:`flagapp.tasks.PERIODIC_TASKS`),
called in-process.

``--loop`` keeps running and calls each task again when its interval (the beat schedule's)
has passed, checking every ``--tick`` seconds: a scheduler in one process, for the demo
(``make demo`` starts it next to runserver, so a rollout advances) and for small
installations without Celery. A task that raises is reported and retried at its next
interval; the loop goes on.
"""

from __future__ import annotations

import json
import time
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
        parser.add_argument(
            "--loop",
            action="store_true",
            help="keep running: each task again when its interval has passed",
        )
        parser.add_argument(
            "--tick",
            type=float,
            default=5.0,
            help="with --loop: seconds between checks for due tasks (default 5)",
        )
        parser.add_argument(
            "--iterations",
            type=int,
            default=0,
            help="with --loop: stop after this many checks (default 0: never)",
        )

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
        if options["tick"] <= 0:
            raise CommandError("--tick: must be a positive number of seconds")
        if not options["loop"]:
            for name in names:
                self._run(name)
            return
        last: dict[str, float] = {}
        checks = 0
        while True:
            now = time.monotonic()
            for name in names:
                if name not in last or now - last[name] >= PERIODIC_TASKS[name][1]:
                    last[name] = now
                    try:
                        self._run(name)
                    except Exception as exc:  # the loop outlives one failed run
                        self.stderr.write(f"{name}: failed: {type(exc).__name__}: {exc}")
            checks += 1
            if options["iterations"] and checks >= options["iterations"]:
                return
            time.sleep(options["tick"])

    def _run(self, name: str) -> None:
        from flagapp.tasks import PERIODIC_TASKS

        task, _ = PERIODIC_TASKS[name]
        # .run() calls the task body directly: no broker, no result back-end.
        result = task.run() if hasattr(task, "run") else task()
        self.stdout.write(f"{name}: {json.dumps(result, default=str, sort_keys=True)}")
        self.stdout.flush()
