"""``/api/v1/flags/``: flags with their variants (and a summary of their states)."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from flagapp import services
from flagapp.api.base import FlagappAPIMixin
from flagapp.api.filters import FlagFilter
from flagapp.api.serializers import FlagSerializer
from flagapp.api.versions import annotate_version
from flagapp.models import Flag, FlagState

from ._common import IF_MATCH, REASON, WRITE_RESPONSES, check_version, with_etag

__all__ = ["FlagViewSet"]

_DESCRIPTIVE = ("name", "description", "flag_type", "owner", "risk", "expires_on", "tags")


@extend_schema_view(
    list=extend_schema(summary="List flags"),
    retrieve=extend_schema(summary="A flag with its variants; ETag carries its version"),
    create=extend_schema(
        summary="Create a flag (disabled in every environment)",
        parameters=[REASON],
        responses={201: FlagSerializer, **WRITE_RESPONSES},
    ),
    partial_update=extend_schema(
        summary="Change a flag's fields, variants or archived state",
        parameters=[IF_MATCH, REASON],
        responses={200: FlagSerializer, **WRITE_RESPONSES},
    ),
    destroy=extend_schema(
        summary="Delete a flag (its key is never reused)",
        parameters=[IF_MATCH, REASON],
        responses={204: None, **WRITE_RESPONSES},
    ),
)
class FlagViewSet(
    FlagappAPIMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet[Flag],
):
    serializer_class = FlagSerializer
    lookup_field = "key"
    lookup_value_regex = "[^/]+"  # flag keys contain dots
    filterset_class = FlagFilter
    search_fields = ["key", "name", "description"]
    ordering_fields = ["key", "name", "created_at", "updated_at", "expires_on"]
    ordering = ["key"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Flag]:
        states = FlagState.objects.select_related("environment")
        return annotate_version(
            Flag.objects.select_related("owner").prefetch_related(
                "variants", Prefetch("states", queryset=states)
            )
        )

    def _fresh(self, key: str) -> Flag:
        return self.get_queryset().get(key=key)

    def _respond(self, flag: Flag, status_code: int = status.HTTP_200_OK) -> Response:
        response = Response(self.get_serializer(flag).data, status=status_code)
        return with_etag(response, getattr(flag, "api_version", None))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._respond(self.get_object())

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = self.change_reason()
        data = dict(serializer.validated_data)
        data.pop("reason", None)
        data.pop("version", None)
        archived = data.pop("archived", False)
        if "variants" in data:
            data["variants"] = [dict(v) for v in data["variants"]]
        user = request.user

        def write() -> Flag:
            flag = services.create_flag(actor=user, reason=reason, **data)
            if archived:
                services.archive_flag(flag, actor=user, reason=reason)
            return flag

        flag = self.governed(reason, write)
        response = self._respond(self._fresh(flag.key), status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"{flag.key}/")
        return response

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        flag = self.get_object()
        serializer = self.get_serializer(flag, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        reason = self.change_reason()
        expected = self.expected_version()
        data = dict(serializer.validated_data)
        user = request.user

        def write() -> None:
            locked = Flag.objects.select_for_update().get(pk=flag.pk)
            check_version(locked, expected)
            archived = data.get("archived")
            if archived is False and locked.archived:
                locked = services.unarchive_flag(locked, actor=user, reason=reason)
            fields = {k: data[k] for k in _DESCRIPTIVE if k in data}
            if "key" in data:
                fields["key"] = data["key"]
            if "kind" in data:
                fields["kind"] = data["kind"]
            if fields:
                locked = services.update_flag(locked, actor=user, reason=reason, **fields)
            if "variants" in data:
                services.set_variants(
                    locked, [dict(v) for v in data["variants"]], actor=user, reason=reason
                )
            if archived is True and not locked.archived:
                services.archive_flag(locked, actor=user, reason=reason)

        self.governed(reason, write)
        return self._respond(self._fresh(flag.key))

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        flag = self.get_object()
        reason = self.change_reason()
        expected = self.expected_version()
        user = request.user

        def write() -> None:
            locked = Flag.objects.select_for_update().get(pk=flag.pk)
            check_version(locked, expected)
            services.delete_flag(locked, actor=user, reason=reason)

        self.governed(reason, write)
        return Response(status=status.HTTP_204_NO_CONTENT)
