"""flagapp.admin.base: the admin saves through the services using Django's documented
ModelAdmin hooks only (issue 12: no override of the admin's private methods)."""

from __future__ import annotations

import inspect

from django.apps import apps
from django.contrib import admin

import flagapp.admin  # noqa: F401  (registers the admins)
from flagapp.admin.base import ServiceAdminMixin


def _private_overrides(cls: type) -> list[str]:
    """Names defined by flagapp's classes in ``cls``'s MRO that are private (``_x``, not
    dunder) methods of Django's ModelAdmin: overriding them ties flagapp to Django's
    internals (``_create_formsets``, ``_changeform_view``, ...)."""
    private = {
        name
        for name, _ in inspect.getmembers(admin.ModelAdmin)
        if name.startswith("_") and not name.startswith("__")
    }
    found = []
    for klass in cls.__mro__:
        if not klass.__module__.startswith("flagapp."):
            continue
        found += [f"{klass.__name__}.{name}" for name in vars(klass) if name in private]
    return sorted(found)


def test_service_admins__every_registered_one__override_no_private_model_admin_method() -> None:
    registered = [
        admin.site.get_model_admin(model)
        for model in apps.get_app_config("flagapp").get_models()
        if admin.site.is_registered(model)
    ]
    service_admins = [type(m) for m in registered if isinstance(m, ServiceAdminMixin)]
    assert len(service_admins) >= 5  # flags, states, segments, environments, webhooks
    assert {cls.__name__: _private_overrides(cls) for cls in service_admins} == {
        cls.__name__: [] for cls in service_admins
    }
