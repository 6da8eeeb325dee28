"""``manage.py flagapp_reconcile``: make every environment's published snapshot match what is
stored (drain the publish outbox, republish where the content hash differs), then deliver the
notifications that are due (what a process that died after COMMIT left in the notification
outbox, and retries).

Prints one line per environment it republished (``production: published v12
(sha256:...)``) and exits 0 when every environment was checked; a compile or publish error is
reported and the exit status is 1. Safe to run at any time, from several machines at once
(see ``flagapp.publishing.reconcile``). The same work runs periodically under Celery beat,
in ``flagapp_run_tasks`` and in the embedded default's in-process reconciler thread.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Publish every environment whose latest snapshot differs from its stored "
        "configuration (and drain the publish outbox)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default", help="database alias")

    def handle(self, *args: Any, **options: Any) -> None:
        from flagapp.notifications.delivery import deliver_due
        from flagapp.publishing import reconcile

        result = reconcile(using=options["database"])
        # Notifications a dead process left in the outbox (and retries that are due).
        sent = deliver_due()
        if sent["due"]:
            self.stdout.write(
                f"notifications: {sent['due']} due, {sent['succeeded']} delivered,"
                f" {sent['retrying']} to retry, {sent['failed']} failed"
            )
        for key, version, etag in result.republished:
            self.stdout.write(f"{key}: published v{version} ({etag})")
        for key, version in result.reannounced:
            self.stdout.write(f"{key}: re-announced v{version} to the shared cache")
        if not result.republished and not result.reannounced and options["verbosity"] >= 1:
            self.stdout.write(f"nothing to republish ({result.checked} environment(s) up to date)")
        if result.failed:
            raise CommandError(f"could not reconcile: {', '.join(result.failed)} (see the log)")
