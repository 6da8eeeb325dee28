"""``/api/v1/history/``: every recorded change (read-only), newest first.

A user sees the history of the kinds of objects they may view (``view_<model>``); the list
is filterable by flag, environment, user, time range and kind of object.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema_view
from rest_framework import generics
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from flagapp.api.base import FlagappAPIMixin, extend_schema
from flagapp.api.filters import HISTORY_MODELS, HistoryFilter
from flagapp.api.history import history_queryset, page_entries
from flagapp.api.serializers import HistoryEntrySerializer
from flagapp.models import Flag

__all__ = ["HistoryView"]

_PARAMS = [
    OpenApiParameter("flag", str, description="A flag key (deleted flags too)."),
    OpenApiParameter("environment", str, description="An environment key."),
    OpenApiParameter("user", str, description="Username of who made the change."),
    OpenApiParameter("since", str, description="ISO 8601, inclusive."),
    OpenApiParameter("until", str, description="ISO 8601, exclusive."),
    OpenApiParameter(
        "model", str, many=True, enum=list(HISTORY_MODELS), description="Kinds of object."
    ),
]


@extend_schema_view(get=extend_schema(summary="Recorded changes, newest first", parameters=_PARAMS))
class HistoryView(FlagappAPIMixin, generics.ListAPIView[Any]):
    serializer_class = HistoryEntrySerializer
    permission_classes = [IsAuthenticated]
    filter_backends: list[Any] = []
    queryset = Flag.objects.none()  # for the schema generator; the data is a union

    def _visible_models(self, request: Request) -> list[str]:
        user = request.user
        return [m for m in HISTORY_MODELS if user.has_perm(f"flagapp.view_{m}")]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        models = self._visible_models(request)
        if not models:
            raise PermissionDenied("You may not view any of the recorded objects.")
        filterset = HistoryFilter(request.query_params, queryset=Flag.objects.none())
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        queryset = history_queryset(filterset.cleaned(), models)
        rows: Any = [] if queryset is None else queryset
        page: Any = self.paginate_queryset(rows)
        items = page_entries(list(page if page is not None else rows))
        data = self.get_serializer(items, many=True).data
        if page is not None:
            return self.get_paginated_response(data)
        return Response(data)
