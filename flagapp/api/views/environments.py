"""``/api/v1/environments/``: where flags are evaluated (no deletion: a deleted
environment would orphan deployed SDK keys and snapshots)."""

from __future__ import annotations

from rest_framework import mixins, viewsets

from flagapp.api.filters import EnvironmentFilter
from flagapp.api.serializers import EnvironmentSerializer
from flagapp.models import Environment

from ._common import (
    VersionedCreateMixin,
    VersionedUpdateMixin,
    resource_schema,
)

__all__ = ["EnvironmentViewSet"]


@resource_schema(
    EnvironmentSerializer,
    list_summary="List environments",
    retrieve_summary="An environment; ETag carries its version",
    create_summary="Create an environment (every flag gets a disabled state in it)",
    update_summary="Rename, reorder or (un)protect an environment",
)
class EnvironmentViewSet(
    VersionedCreateMixin,
    VersionedUpdateMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet[Environment],
):
    model = Environment
    write_fields = ("key", "name", "protected", "order")
    create_service = "create_environment"
    update_service = "update_environment"
    serializer_class = EnvironmentSerializer
    lookup_field = "key"
    lookup_value_regex = "[^/]+"
    filterset_class = EnvironmentFilter
    search_fields = ["key", "name"]
    ordering_fields = ["key", "name", "order", "created_at"]
    ordering = ["order", "key"]
    http_method_names = ["get", "post", "patch", "head", "options"]
