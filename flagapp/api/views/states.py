"""``/api/v1/flags/{key}/environments/[{env}/]``: a flag's state per environment.

The state carries its own ``version`` (the services compare it under a row lock), so a
stale write is refused by the same code the admin uses.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from flagapp import services
from flagapp.api.base import FlagappAPIMixin, extend_schema
from flagapp.api.serializers import FlagStateSerializer
from flagapp.models import Environment, Flag, FlagState, TargetingRule

from ._common import IF_MATCH, REASON, WRITE_RESPONSES, with_etag

__all__ = ["FlagStateViewSet"]

_STATE_FIELDS = ("enabled", "fallthrough", "prerequisites", "rules")

_PATH = [
    OpenApiParameter("flag_key", str, OpenApiParameter.PATH, description="The flag's key."),
]
_ENV = [
    OpenApiParameter(
        "environment_key", str, OpenApiParameter.PATH, description="The environment's key."
    ),
]


@extend_schema_view(
    list=extend_schema(summary="A flag's state in every environment", parameters=_PATH),
    retrieve=extend_schema(
        summary="A flag's state in one environment; ETag carries its version",
        parameters=_PATH + _ENV,
    ),
    update=extend_schema(
        summary="Replace a flag's state in one environment (all four parts)",
        parameters=_PATH + _ENV + [IF_MATCH, REASON],
        responses={200: FlagStateSerializer, **WRITE_RESPONSES},
    ),
    partial_update=extend_schema(
        summary="Change parts of a flag's state (enabled=false is the kill switch)",
        parameters=_PATH + _ENV + [IF_MATCH, REASON],
        responses={200: FlagStateSerializer, **WRITE_RESPONSES},
    ),
)
class FlagStateViewSet(FlagappAPIMixin, viewsets.GenericViewSet[FlagState]):
    serializer_class = FlagStateSerializer
    pagination_class = None  # one entry per environment
    filter_backends: list[Any] = []
    http_method_names = ["get", "put", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[FlagState]:
        rules = TargetingRule.objects.order_by("order", "id")
        return (
            FlagState.objects.select_related("flag", "environment")
            .prefetch_related(Prefetch("rules", queryset=rules))
            .filter(flag__key=self.kwargs.get("flag_key"))
            .order_by("environment__order", "environment__key")
        )

    def _flag(self) -> Flag:
        return get_object_or_404(Flag, key=self.kwargs.get("flag_key"))

    def _state(self) -> FlagState:
        flag = self._flag()
        env = get_object_or_404(Environment, key=self.kwargs.get("environment_key"))
        return get_object_or_404(self.get_queryset(), flag=flag, environment=env)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self._flag()
        return Response(self.get_serializer(self.get_queryset(), many=True).data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        state = self._state()
        return with_etag(Response(self.get_serializer(state).data), state.version)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._write(request, partial=False)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._write(request, partial=True)

    def _write(self, request: Request, *, partial: bool) -> Response:
        state = self._state()
        serializer = self.get_serializer(state, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if not partial:
            missing = [f for f in _STATE_FIELDS if f not in data]
            if missing:
                raise ValidationError({f: ["Required when replacing the state."] for f in missing})
        reason = self.change_reason()
        expected = self.expected_version()
        changes = {k: data[k] for k in _STATE_FIELDS if k in data}
        if "rules" in changes:
            changes["rules"] = [dict(r) for r in changes["rules"]]
        user = request.user

        def write() -> FlagState:
            return services.update_flag_state(
                state.flag,
                state.environment,
                actor=user,
                reason=reason,
                expected_version=expected,
                **changes,
            )

        self.governed(reason, write)
        fresh = self._state()
        response = Response(self.get_serializer(fresh).data, status=status.HTTP_200_OK)
        return with_etag(response, fresh.version)
