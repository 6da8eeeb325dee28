"""URLs of flagapp's server surfaces: include them with ``path("", include("flagapp.urls"))``."""

from django.urls import URLPattern, URLResolver, include, path

from flagapp.api.schema import SchemaView, SwaggerView
from flagapp.metrics.view import metrics_view

app_name = "flagapp"

urlpatterns: list[URLPattern | URLResolver] = [
    # SDK API (docs/protocol.md) and OFREP (docs/api.md): /sdk/v1/..., /ofrep/v1/...
    path("", include("flagapp.sdk.urls")),
    # Management REST API (docs/api.md), its OpenAPI 3 schema and docs page.
    path("api/v1/", include("flagapp.api.urls")),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/docs/", SwaggerView.as_view(url_name="flagapp:api-schema"), name="api-docs"),
    # Prometheus exposition (docs/observability.md), for METRICS_ALLOW or METRICS_TOKEN.
    path("metrics", metrics_view, name="metrics"),
]
