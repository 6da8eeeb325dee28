"""``/api/v1/segments/``: reusable audiences (global: every environment carries them)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from flagapp import services
from flagapp.api.base import FlagappAPIMixin
from flagapp.api.filters import SegmentFilter
from flagapp.api.serializers import SegmentSerializer
from flagapp.api.versions import annotate_version
from flagapp.models import Segment

from ._common import IF_MATCH, REASON, WRITE_RESPONSES, check_version, with_etag

__all__ = ["SegmentViewSet"]

_FIELDS = ("key", "name", "description", "include", "exclude", "conditions")


@extend_schema_view(
    list=extend_schema(summary="List segments"),
    retrieve=extend_schema(summary="A segment; ETag carries its version"),
    create=extend_schema(
        summary="Create a segment",
        parameters=[REASON],
        responses={201: SegmentSerializer, **WRITE_RESPONSES},
    ),
    partial_update=extend_schema(
        summary="Change a segment",
        parameters=[IF_MATCH, REASON],
        responses={200: SegmentSerializer, **WRITE_RESPONSES},
    ),
    destroy=extend_schema(
        summary="Delete a segment no rule uses",
        parameters=[IF_MATCH, REASON],
        responses={204: None, **WRITE_RESPONSES},
    ),
)
class SegmentViewSet(FlagappAPIMixin, mixins.ListModelMixin, viewsets.GenericViewSet[Segment]):
    serializer_class = SegmentSerializer
    lookup_field = "key"
    lookup_value_regex = "[^/]+"
    filterset_class = SegmentFilter
    search_fields = ["key", "name", "description"]
    ordering_fields = ["key", "name", "created_at", "updated_at"]
    ordering = ["key"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Segment]:
        return annotate_version(Segment.objects.all())

    def _respond(self, segment: Segment, status_code: int = status.HTTP_200_OK) -> Response:
        response = Response(self.get_serializer(segment).data, status=status_code)
        return with_etag(response, getattr(segment, "api_version", None))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._respond(self.get_object())

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = self.change_reason()
        data = {k: v for k, v in serializer.validated_data.items() if k in _FIELDS}
        user = request.user
        segment = self.governed(
            reason, lambda: services.create_segment(actor=user, reason=reason, **data)
        )
        response = self._respond(self.get_queryset().get(pk=segment.pk), status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"{segment.key}/")
        return response

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        segment = self.get_object()
        serializer = self.get_serializer(segment, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        reason = self.change_reason()
        expected = self.expected_version()
        data = {k: v for k, v in serializer.validated_data.items() if k in _FIELDS}
        user = request.user

        def write() -> None:
            locked = Segment.objects.select_for_update().get(pk=segment.pk)
            check_version(locked, expected)
            services.update_segment(locked, actor=user, reason=reason, **data)

        self.governed(reason, write)
        return self._respond(self.get_queryset().get(pk=segment.pk))

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        segment = self.get_object()
        reason = self.change_reason()
        expected = self.expected_version()
        user = request.user

        def write() -> None:
            locked = Segment.objects.select_for_update().get(pk=segment.pk)
            check_version(locked, expected)
            services.delete_segment(locked, actor=user, reason=reason)

        self.governed(reason, write)
        return Response(status=status.HTTP_204_NO_CONTENT)
