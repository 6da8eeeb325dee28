"""flagapp's AppConfig: wires settings reload and registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig


class FlagappConfig(AppConfig):
    name = "flagapp"
    verbose_name = "Feature flags"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, conf

        conf.connect_signals()
        checks.register()
        # Snapshot announcements for the SSE streams (and Redis pub/sub across processes):
        # connected in every process, since a change may be published by any of them.
        from .sdk import notifier

        notifier.connect()
