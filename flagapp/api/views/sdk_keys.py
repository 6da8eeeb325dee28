"""``/api/v1/sdk-keys/``: read-only credentials of the SDK and OFREP APIs.

Creating a key answers its token once (only a hash is stored); a key is never edited, only
revoked, so these writes carry no version. Keys of a protected environment read its
configuration, so creating or revoking one needs the protected-environment permission too.
Every create and revoke is logged (logger ``flagapp.api``) with the user and the reason, and
the reason is stored on the key (``flagapp.services.sdk_keys``, the write path).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from flagapp.api.base import FlagappAPIMixin, extend_schema
from flagapp.api.filters import SdkKeyFilter
from flagapp.api.permissions import check_environment_change
from flagapp.api.serializers import (
    RevokeSerializer,
    SdkKeyCreatedSerializer,
    SdkKeyCreateSerializer,
    SdkKeySerializer,
)
from flagapp.models import Environment
from flagapp.models.sdk import SdkKey
from flagapp.services import sdk_keys

from ._common import REASON, WRITE_RESPONSES

__all__ = ["SdkKeyViewSet"]

logger = logging.getLogger("flagapp.api")


@extend_schema_view(
    list=extend_schema(summary="List SDK keys (never their secrets)"),
    retrieve=extend_schema(summary="One SDK key (never its secret)"),
    create=extend_schema(
        summary="Create an SDK key; the answer is the only time its token is shown",
        request=SdkKeyCreateSerializer,
        parameters=[REASON],
        responses={201: SdkKeyCreatedSerializer, **WRITE_RESPONSES},
    ),
    revoke=extend_schema(
        summary="Revoke an SDK key (idempotent)",
        request=RevokeSerializer,
        parameters=[REASON],
        responses={200: SdkKeySerializer, **WRITE_RESPONSES},
    ),
)
class SdkKeyViewSet(
    FlagappAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[SdkKey],
):
    serializer_class = SdkKeySerializer
    filterset_class = SdkKeyFilter
    search_fields = ["name", "public_id"]
    ordering_fields = ["created_at", "last_used_at", "name"]
    ordering = ["-created_at"]
    http_method_names = ["get", "post", "head", "options"]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Revoking is a change of the key, not an addition: it needs change_sdkkey.
        if getattr(self, "action", None) == "revoke":
            self.required_permissions = {"POST": ["%(app_label)s.change_%(model_name)s"]}
        super().initial(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[SdkKey]:
        return SdkKey.objects.select_related("environment", "created_by", "revoked_by")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = SdkKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = self.change_reason()
        env = Environment.objects.filter(key=serializer.validated_data["environment"]).first()
        if env is None:
            raise ValidationError({"environment": ["No such environment."]})
        check_environment_change(request.user, env)
        sdk_key, token = sdk_keys.create_sdk_key(
            env,
            name=serializer.validated_data.get("name", ""),
            scope=serializer.validated_data.get("scope", "server"),
            actor=request.user,
            reason=reason,
        )
        logger.info(
            "SDK key %s created for %s by %s: %s",
            sdk_key.public_id,
            env.key,
            request.user,
            reason,
        )
        data = dict(SdkKeyCreatedSerializer(sdk_key).data)
        data["token"] = token
        response = Response(data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"  # the token must not be cached anywhere
        return response

    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        sdk_key = self.get_object()
        reason = self.change_reason()
        check_environment_change(request.user, sdk_key.environment)
        sdk_keys.revoke_sdk_key(sdk_key, actor=request.user, reason=reason)
        logger.info(
            "SDK key %s of %s revoked by %s: %s",
            sdk_key.public_id,
            sdk_key.environment.key,
            request.user,
            reason,
        )
        sdk_key = self.get_queryset().get(pk=sdk_key.pk)
        return Response(SdkKeySerializer(sdk_key).data)
