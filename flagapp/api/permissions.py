"""Who may call what.

Two layers, both required:

* Django model permissions, including ``view_<model>`` for reads (DRF's own
  ``DjangoModelPermissions`` lets any authenticated user read everything). A view may name
  other permissions per HTTP method with ``required_permissions`` (e.g. revoking an SDK key
  needs ``change_sdkkey``, not ``add_sdkkey``).
* The per-environment change permission: changing anything scoped to a protected
  environment (its flag states and rules, the environment itself, its SDK keys) also needs
  ``flagapp.change_protected_environment``. See :func:`check_environment_change`.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import DjangoModelPermissions
from rest_framework.request import Request
from rest_framework.views import APIView

__all__ = [
    "PROTECTED_ENVIRONMENT_PERMISSION",
    "ModelPermissions",
    "check_environment_change",
    "may_change_environment",
]

PROTECTED_ENVIRONMENT_PERMISSION = "flagapp.change_protected_environment"


class ModelPermissions(DjangoModelPermissions):
    """Model permissions with ``view_`` required for reads and per-view overrides.

    ``view.required_permissions`` (a mapping of HTTP method to permission names, with
    ``%(app_label)s``/``%(model_name)s`` placeholders) takes precedence over the defaults
    for the methods it names.
    """

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    _current_view: APIView | None = None

    def has_permission(self, request: Request, view: APIView) -> bool:
        self._current_view = view
        try:
            return bool(super().has_permission(request, view))
        finally:
            self._current_view = None

    def get_required_permissions(self, method: str, model_cls: type[Model]) -> list[str]:
        view: Any = getattr(self, "_current_view", None)
        overrides = getattr(view, "required_permissions", None) or {}
        if method in overrides:
            kwargs = {
                "app_label": model_cls._meta.app_label,
                "model_name": model_cls._meta.model_name,
            }
            return [perm % kwargs for perm in overrides[method]]
        return list(super().get_required_permissions(method, model_cls))


def may_change_environment(user: Any, environment: Any) -> bool:
    """Whether ``user`` may change things scoped to ``environment``.

    Unprotected environments need no more than the model permission; protected ones
    (production, typically) need :data:`PROTECTED_ENVIRONMENT_PERMISSION` as well.
    """
    if not getattr(environment, "protected", False):
        return True
    return bool(user is not None and user.has_perm(PROTECTED_ENVIRONMENT_PERMISSION))


def check_environment_change(user: Any, environment: Any) -> None:
    """Raise 403 unless ``user`` may change things scoped to ``environment``."""
    if not may_change_environment(user, environment):
        raise PermissionDenied(
            f"Changing the protected environment '{environment.key}' needs the "
            f"'{PROTECTED_ENVIRONMENT_PERMISSION}' permission."
        )
