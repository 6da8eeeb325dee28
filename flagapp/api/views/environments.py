"""``/api/v1/environments/``: where flags are evaluated (no deletion: a deleted
environment would orphan deployed SDK keys and snapshots)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from flagapp import services
from flagapp.api.base import FlagappAPIMixin
from flagapp.api.filters import EnvironmentFilter
from flagapp.api.serializers import EnvironmentSerializer
from flagapp.api.versions import annotate_version
from flagapp.models import Environment

from ._common import IF_MATCH, REASON, WRITE_RESPONSES, check_version, with_etag

__all__ = ["EnvironmentViewSet"]


@extend_schema_view(
    list=extend_schema(summary="List environments"),
    retrieve=extend_schema(summary="An environment; ETag carries its version"),
    create=extend_schema(
        summary="Create an environment (every flag gets a disabled state in it)",
        parameters=[REASON],
        responses={201: EnvironmentSerializer, **WRITE_RESPONSES},
    ),
    partial_update=extend_schema(
        summary="Rename, reorder or (un)protect an environment",
        parameters=[IF_MATCH, REASON],
        responses={200: EnvironmentSerializer, **WRITE_RESPONSES},
    ),
)
class EnvironmentViewSet(
    FlagappAPIMixin, mixins.ListModelMixin, viewsets.GenericViewSet[Environment]
):
    serializer_class = EnvironmentSerializer
    lookup_field = "key"
    lookup_value_regex = "[^/]+"
    filterset_class = EnvironmentFilter
    search_fields = ["key", "name"]
    ordering_fields = ["key", "name", "order", "created_at"]
    ordering = ["order", "key"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Environment]:
        return annotate_version(Environment.objects.all())

    def _respond(self, env: Environment, status_code: int = status.HTTP_200_OK) -> Response:
        response = Response(self.get_serializer(env).data, status=status_code)
        return with_etag(response, getattr(env, "api_version", None))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._respond(self.get_object())

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = self.change_reason()
        fields = ("key", "name", "protected", "order")
        data = {k: v for k, v in serializer.validated_data.items() if k in fields}
        user = request.user
        env = self.governed(
            reason, lambda: services.create_environment(actor=user, reason=reason, **data)
        )
        response = self._respond(self.get_queryset().get(pk=env.pk), status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"{env.key}/")
        return response

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        env = self.get_object()
        serializer = self.get_serializer(env, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        reason = self.change_reason()
        expected = self.expected_version()
        fields = ("key", "name", "protected", "order")
        data = {k: v for k, v in serializer.validated_data.items() if k in fields}
        user = request.user

        def write() -> None:
            locked = Environment.objects.select_for_update().get(pk=env.pk)
            check_version(locked, expected)
            services.update_environment(locked, actor=user, reason=reason, **data)

        self.governed(reason, write)
        return self._respond(self.get_queryset().get(pk=env.pk))
