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
