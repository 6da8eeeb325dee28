"""``/api/v1/segments/``: reusable audiences (global: every environment carries them)."""

from __future__ import annotations

from rest_framework import mixins, viewsets

from flagapp.api.filters import SegmentFilter
from flagapp.api.serializers import SegmentSerializer
from flagapp.models import Segment

from ._common import (
    VersionedCreateMixin,
    VersionedDestroyMixin,
    VersionedUpdateMixin,
    resource_schema,
)

__all__ = ["SegmentViewSet"]


@resource_schema(
    SegmentSerializer,
    list_summary="List segments",
    retrieve_summary="A segment; ETag carries its version",
    create_summary="Create a segment",
    update_summary="Change a segment",
    destroy_summary="Delete a segment no rule uses",
)
class SegmentViewSet(
    VersionedCreateMixin,
    VersionedUpdateMixin,
    VersionedDestroyMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet[Segment],
):
    model = Segment
    write_fields = ("key", "name", "description", "include", "exclude", "conditions")
    create_service = "create_segment"
    update_service = "update_segment"
    delete_service = "delete_segment"
    serializer_class = SegmentSerializer
    lookup_field = "key"
    lookup_value_regex = "[^/]+"
    filterset_class = SegmentFilter
    search_fields = ["key", "name", "description"]
    ordering_fields = ["key", "name", "created_at", "updated_at"]
    ordering = ["key"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
