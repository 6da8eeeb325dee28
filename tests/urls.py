"""URLconf of the test suite: the admin plus every flagapp surface."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("", include("flagapp.urls")),
]
