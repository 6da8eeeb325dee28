"""URLs of flagapp's server surfaces: include them with ``path("", include("flagapp.urls"))``."""

from django.urls import URLPattern, URLResolver, include, path

app_name = "flagapp"

urlpatterns: list[URLPattern | URLResolver] = [
    # SDK API (docs/protocol.md) and OFREP (docs/api.md): /sdk/v1/..., /ofrep/v1/...
    path("", include("flagapp.sdk.urls")),
]
