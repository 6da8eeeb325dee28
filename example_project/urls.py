"""Example project URLs: the admin, the demo pages and every flagapp surface."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("", include("example_project.demo.urls")),
    path("", include("flagapp.urls")),
]
