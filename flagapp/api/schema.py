"""The OpenAPI 3 schema (``/api/schema/``) and its docs page (``/api/docs/``).

The docs page loads Swagger UI from drf-spectacular-sidecar's static files when that app is
installed, never from a CDN: an admin tool must work on a network without internet access
and must not hand the session to third-party JavaScript. Without the sidecar the page still
links the raw schema.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.http import HttpResponse
from django.templatetags.static import static
from django.utils.html import escape
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request

from .base import FlagappAPIMixin

__all__ = ["SCHEMA_SETTINGS", "SchemaView", "SwaggerView", "only_management_api"]

SCHEMA_SETTINGS: dict[str, Any] = {
    "TITLE": "flagapp management API",
    "DESCRIPTION": (
        "Flags, variants, per-environment state and rules, segments, environments, history "
        "and SDK keys. Every write needs a reason (X-Change-Reason or 'reason') and, when it "
        "edits something, the version it read (If-Match or 'version'); see docs/api.md."
    ),
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["flagapp.api.schema.only_management_api"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}


def only_management_api(endpoints: list[tuple[str, Any, Any, Any]]) -> list[Any]:
    """drf-spectacular preprocessing hook: the schema describes ``/api/v1/`` only (the SDK
    and OFREP surfaces follow their own protocol documents)."""
    return [e for e in endpoints if e[0].startswith("/api/v1/")]


class SchemaView(SpectacularAPIView):
    """The schema of the management API (for any authenticated user)."""

    custom_settings = SCHEMA_SETTINGS
    authentication_classes = FlagappAPIMixin.authentication_classes
    permission_classes = [IsAuthenticated]


def _sidecar_installed() -> bool:
    return apps.is_installed("drf_spectacular_sidecar")


class SwaggerView(SpectacularSwaggerView):
    """Swagger UI served from local static files only."""

    authentication_classes = FlagappAPIMixin.authentication_classes
    permission_classes = [IsAuthenticated]

    @staticmethod
    def _swagger_ui_resource(filename: str) -> str:
        return static(f"drf_spectacular_sidecar/swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon() -> str:
        return static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png")

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        if _sidecar_installed():
            return super().get(request, *args, **kwargs)
        schema_url = escape(self._get_schema_url(request))
        return HttpResponse(
            "<!doctype html><title>flagapp API</title><h1>flagapp management API</h1>"
            f'<p>The OpenAPI 3 schema is at <a href="{schema_url}">{schema_url}</a>. '
            "Install drf-spectacular-sidecar (and add it to INSTALLED_APPS) for the "
            "interactive docs.</p>",
            content_type="text/html; charset=utf-8",
        )
