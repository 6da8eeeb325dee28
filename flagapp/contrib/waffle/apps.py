"""The compatibility app: ``INSTALLED_APPS = [..., "flagapp.contrib.waffle", ...]`` in place
of ``"waffle"``. Loading it routes ``import waffle`` here (:mod:`.shim`)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class WaffleCompatConfig(AppConfig):
    name = "flagapp.contrib.waffle"
    label = "flagapp_waffle"
    verbose_name = "flagapp: django-waffle compatibility"

    def __init__(self, app_name: str, app_module: Any) -> None:
        super().__init__(app_name, app_module)
        from django.conf import settings

        for entry in settings.INSTALLED_APPS:
            if entry == "waffle" or entry.startswith("waffle.apps"):
                raise ImproperlyConfigured(
                    "INSTALLED_APPS has both 'waffle' and 'flagapp.contrib.waffle': the "
                    "compatibility app replaces django-waffle (import first with "
                    "manage.py flagapp_import_waffle, then swap them)"
                )
        # Now, during app loading and before any models module: call sites importing
        # waffle in models, views or URLconfs then get this layer.
        from .shim import install

        install()

    def ready(self) -> None:
        from . import _connect

        _connect()
