"""flagapp's AppConfig: wires settings reload, registers the system checks and connects
every signal receiver (none is connected at import time)."""

from __future__ import annotations

from django.apps import AppConfig


class FlagappConfig(AppConfig):
    name = "flagapp"
    verbose_name = "Feature flags"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_finished, request_started
        from django.db.models.signals import post_migrate

        from . import checks, conf, evaluation, reconciler, storage

        conf.connect_signals()
        checks.register()
        evaluation.connect()
        from . import exposures

        exposures.connect()
        from . import telemetry

        telemetry.connect()  # FLAGAPP["OPENTELEMETRY"]: evaluation events (extra "otel")
        # Snapshot announcements for the SSE streams (and Redis pub/sub across processes):
        # connected in every process, since a change may be published by any of them.
        from .sdk import notifier

        notifier.connect()
        # Change notifications (webhooks, Slack, owner email): the one dispatcher.
        from .notifications import dispatcher

        dispatcher.connect()
        # Stored snapshots compressed with lz4 on PostgreSQL 14+ (flagapp.storage).
        post_migrate.connect(storage.compress_snapshots, sender=self, dispatch_uid="flagapp.lz4")
        # The embedded default's reconciler starts with the first request a server handles.
        request_started.connect(reconciler.on_server_request, dispatch_uid="flagapp.reconciler")
        request_finished.connect(
            reconciler.on_server_request, dispatch_uid="flagapp.reconciler.finished"
        )
