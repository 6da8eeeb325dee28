"""URLs of flagapp's server surfaces: include them with ``path("", include("flagapp.urls"))``."""

from django.urls import URLPattern, URLResolver

app_name = "flagapp"

urlpatterns: list[URLPattern | URLResolver] = []
