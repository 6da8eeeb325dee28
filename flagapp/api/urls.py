"""``/api/v1/`` routes of the management API (included by :mod:`flagapp.urls`)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path
from rest_framework.routers import SimpleRouter

from .change_requests import urlpatterns as change_request_urls
from .rollouts import urlpatterns as rollout_urls
from .views import (
    EnvironmentViewSet,
    FlagStateViewSet,
    FlagViewSet,
    HistoryView,
    SdkKeyViewSet,
    SegmentViewSet,
)

app_name = "api"

router = SimpleRouter()
router.register("environments", EnvironmentViewSet, basename="environment")
router.register("flags", FlagViewSet, basename="flag")
router.register("segments", SegmentViewSet, basename="segment")
router.register("sdk-keys", SdkKeyViewSet, basename="sdkkey")

_state_list = FlagStateViewSet.as_view({"get": "list"})
_state_detail = FlagStateViewSet.as_view(
    {"get": "retrieve", "put": "update", "patch": "partial_update"}
)

urlpatterns: list[URLPattern | URLResolver] = [
    path("flags/<str:flag_key>/environments/", _state_list, name="flagstate-list"),
    path(
        "flags/<str:flag_key>/environments/<str:environment_key>/",
        _state_detail,
        name="flagstate-detail",
    ),
    path("history/", HistoryView.as_view(), name="history"),
    *router.urls,
    *rollout_urls,
    *change_request_urls,
]
