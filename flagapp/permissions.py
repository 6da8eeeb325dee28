"""``FlagPermission``: a Django REST framework permission tied to a flag.

::

    class BetaViewSet(viewsets.ModelViewSet):
        permission_classes = [IsAuthenticated, FlagPermission]
        required_flag = "api.beta-endpoints"          # "!key" negates

    permission_classes = [FlagPermission.for_flag("api.beta-endpoints")]

The flag is evaluated for the DRF request (so token- or session-authenticated users are the
targeting key). Refusal is a 404, like ``@flag_required``: an unreleased endpoint should look
absent rather than forbidden.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission

from .decorators import parse_flag_spec
from .evaluation import flag_is_active

__all__ = ["FlagPermission"]


class FlagPermission(BasePermission):
    flag: str | None = None

    @classmethod
    def for_flag(cls, spec: str) -> type[FlagPermission]:
        """A permission class requiring flag ``spec`` (``"!key"`` negates)."""
        return type(f"FlagPermission[{spec}]", (cls,), {"flag": spec})

    def has_permission(self, request: Any, view: Any) -> bool:
        spec = self.flag or getattr(view, "required_flag", None)
        if not spec:
            raise ImproperlyConfigured(
                "FlagPermission needs FlagPermission.for_flag(key) or view.required_flag"
            )
        key, negate = parse_flag_spec(spec)
        if flag_is_active(request, key) == negate:
            raise NotFound()
        return True
