"""URL patterns of the SDK API and OFREP (included by ``flagapp.urls``)."""

from django.urls import URLPattern, path

from flagapp.sdk import ofrep, views

urlpatterns: list[URLPattern] = [
    path("sdk/v1/ruleset", views.ruleset, name="sdk-ruleset"),
    path("sdk/v1/stream", views.stream, name="sdk-stream"),
    path("sdk/v1/events", views.events, name="sdk-events"),
    path("ofrep/v1/configuration", ofrep.configuration, name="ofrep-configuration"),
    path("ofrep/v1/evaluate/flags", ofrep.evaluate_bulk, name="ofrep-bulk"),
    path("ofrep/v1/evaluate/flags/<str:key>", ofrep.evaluate_flag, name="ofrep-flag"),
    path("ofrep/v1/event-stream", ofrep.event_stream, name="ofrep-event-stream"),
]
