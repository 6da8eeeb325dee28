"""Change-request endpoints of the management API (``/api/v1/change-requests/``).

==========================================  ==============================================
``GET  change-requests/?status=pending``    list (filters: status, flag, environment)
``POST change-requests/``                   propose ``{operation, flag, environment?,
                                            params, reason}`` -> 201 (blast radius stored)
``GET  change-requests/{id}/``              one request, with its diff against now
``POST change-requests/{id}/approve/``      ``{comment?}`` -> 200 applied; 409 when its base
                                            version moved on (it stays pending: propose
                                            it again) or it conflicted
``POST change-requests/{id}/reject/``       ``{comment}`` -> 200 rejected
``POST change-requests/{id}/apply/``        retry an approved request whose apply failed
``POST change-requests/{id}/withdraw/``     the author withdraws ``{comment?}`` -> 200
``GET  change-requests/{id}/history/``      every step: who, when, status, why
``POST change-requests/preview/``           dry run ``{operation, flag, environment?,
                                            params}`` -> the blast radius; nothing written
==========================================  ==============================================

Reads need ``flagapp.view_changerequest``. Writes are checked by the governance layer, not
by model permissions: proposing needs what the direct edit needs, reviewing needs
``flagapp.approve_changerequest`` and a user other than the author.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from flagapp.api.base import extend_schema
from flagapp.governance import change_requests as crs
from flagapp.models import ChangeRequest

from .base import FlagappAPIMixin

__all__ = ["ChangeRequestSerializer", "ChangeRequestViewSet", "router", "urlpatterns"]


@extend_schema_field(OpenApiTypes.OBJECT)
class _JSONObject(serializers.JSONField):
    pass


class ChangeRequestSerializer(serializers.ModelSerializer[ChangeRequest]):
    """A change request as the API shows it (read-only: writes go through actions)."""

    flag = serializers.CharField(source="flag_key", read_only=True)
    environment = serializers.CharField(source="environment_key", read_only=True)
    operation = serializers.CharField(source="kind", read_only=True)
    author = serializers.CharField(source="author.get_username", read_only=True)
    reviewer = serializers.SerializerMethodField()
    blast_radius = _JSONObject(read_only=True)
    payload = _JSONObject(read_only=True)

    class Meta:
        model = ChangeRequest
        fields = [
            "id",
            "flag",
            "environment",
            "operation",
            "payload",
            "base_version",
            "author",
            "reason",
            "status",
            "reviewer",
            "review_comment",
            "blast_radius",
            "detail",
            "created_at",
            "reviewed_at",
            "applied_at",
        ]
        read_only_fields = fields

    def get_reviewer(self, obj: ChangeRequest) -> str | None:
        return obj.reviewer.get_username() if obj.reviewer else None


class ChangeRequestDetailSerializer(ChangeRequestSerializer):
    diff = serializers.SerializerMethodField()
    starts_rollouts = serializers.SerializerMethodField()

    class Meta(ChangeRequestSerializer.Meta):
        fields = [*ChangeRequestSerializer.Meta.fields, "diff", "starts_rollouts"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_diff(self, obj: ChangeRequest) -> dict[str, Any]:
        return crs.diff(obj)

    @extend_schema_field({"type": "array", "items": {"type": "object"}})
    def get_starts_rollouts(self, obj: ChangeRequest) -> list[dict[str, Any]]:
        """The draft plans whose first step this is: approving it approves their later steps
        and rollback too (the admin page's *Starts a rollout*)."""
        from flagapp.rollouts.plans import plans_started_by

        from .rollouts import GuardrailSerializer

        return [
            {
                "id": plan.pk,
                "treatment": plan.treatment_variant,
                "control": plan.control_variant,
                "steps": list(plan.steps),
                "min_step_seconds": plan.min_step_seconds,
                "guardrails": GuardrailSerializer(plan.guardrails.all(), many=True).data,
                "version": plan.version,
            }
            for plan in plans_started_by(obj)
        ]  # fmt: skip


# Named explicitly: "Change" + COMPONENT_SPLIT_REQUEST's "Request" suffix would be
# "ChangeRequest", the model's component, and the preview body was documented as a request.
@extend_schema_serializer(component_name="ProposedChange")
class ChangeSerializer(serializers.Serializer[Any]):
    """A proposed change in the services' input shape."""

    operation = serializers.ChoiceField(choices=sorted(crs._OPERATION_PERMISSIONS))
    flag = serializers.CharField(max_length=200, required=False)
    environment = serializers.CharField(max_length=100, required=False)
    segment = serializers.CharField(max_length=100, required=False)
    params = serializers.DictField(required=False, default=dict)


@extend_schema_serializer(component_name="ChangeProposal")
class ProposeSerializer(ChangeSerializer):
    reason = serializers.CharField(help_text="Why the change is proposed. Required.")


class ReviewSerializer(serializers.Serializer[Any]):
    comment = serializers.CharField(required=False, allow_blank=True, default="")


class PreviewSerializer(serializers.Serializer[Any]):
    blast_radius = _JSONObject(allow_null=True)
    summary = serializers.CharField()


def _change(data: dict[str, Any]) -> dict[str, Any]:
    """The services' change shape: ``{"operation", "flag"?, "environment"?, "segment"?,
    "params"}`` (what each operation needs is checked when it is dry-run)."""
    change: dict[str, Any] = {"operation": data["operation"], "params": data["params"]}
    for name in ("flag", "environment", "segment"):
        if data.get(name):
            change[name] = data[name]
    return change


class ChangeRequestViewSet(
    FlagappAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[ChangeRequest],
):
    queryset = ChangeRequest.objects.select_related("author", "reviewer").order_by("-id")
    serializer_class = ChangeRequestSerializer
    filterset_fields = ["status", "flag_key", "environment_key", "kind"]
    ordering_fields = ["created_at", "id"]
    # POSTs are authorised by flagapp.governance (edit permission to propose, approve
    # permission and a second person to review), not by add_/change_changerequest.
    required_permissions = {"POST": []}

    def get_serializer_class(self) -> Any:
        if self.action == "retrieve":
            return ChangeRequestDetailSerializer
        return ChangeRequestSerializer

    def get_queryset(self) -> QuerySet[ChangeRequest]:
        qs = super().get_queryset()
        params = self.request.query_params
        if params.get("flag"):
            qs = qs.filter(flag_key=params["flag"])
        if params.get("environment"):
            qs = qs.filter(environment_key=params["environment"])
        return qs

    def _one(self, pk: Any) -> ChangeRequest:
        return get_object_or_404(ChangeRequest.objects.all(), pk=pk)

    def _outcome(self, cr: ChangeRequest) -> Response:
        code = status.HTTP_409_CONFLICT if cr.status == "conflicted" else status.HTTP_200_OK
        return Response(ChangeRequestSerializer(cr).data, status=code)

    @extend_schema(request=ProposeSerializer, responses={201: ChangeRequestSerializer})
    def create(self, request: Request) -> Response:
        body = ProposeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cr = crs.propose(
            _change(body.validated_data), author=request.user, reason=body.validated_data["reason"]
        )
        return Response(ChangeRequestSerializer(cr).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ReviewSerializer, responses={200: ChangeRequestSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: Any = None) -> Response:
        body = ReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cr = crs.approve(
            self._one(pk), reviewer=request.user, comment=body.validated_data["comment"]
        )
        return self._outcome(cr)

    @extend_schema(request=ReviewSerializer, responses={200: ChangeRequestSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: Any = None) -> Response:
        body = ReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cr = crs.reject(
            self._one(pk), reviewer=request.user, comment=body.validated_data["comment"]
        )
        return Response(ChangeRequestSerializer(cr).data)

    @extend_schema(request=ReviewSerializer, responses={200: ChangeRequestSerializer})
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: Any = None) -> Response:
        body = ReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cr = crs.withdraw(self._one(pk), actor=request.user, reason=body.validated_data["comment"])
        return Response(ChangeRequestSerializer(cr).data)

    @extend_schema(request=None, responses={200: ChangeRequestSerializer})
    @action(detail=True, methods=["post"])
    def apply(self, request: Request, pk: Any = None) -> Response:
        return self._outcome(crs.apply(self._one(pk), actor=request.user))

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk: Any = None) -> Response:
        cr = self._one(pk)
        rows = [
            {
                "at": h.history_date,
                "user": h.history_user.get_username() if h.history_user else None,
                "status": h.status,
                "reason": h.history_change_reason,
            }
            for h in cr.history.select_related("history_user").order_by("history_id")
        ]
        return Response(rows)

    @extend_schema(request=ChangeSerializer, responses={200: PreviewSerializer})
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        body = ChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        change = _change(body.validated_data)
        crs.check_can_propose(request.user, change)
        radius = crs.preview(change)
        return Response(
            {
                "blast_radius": radius.as_dict() if radius else None,
                "summary": radius.summary() if radius else "the change touches no flag",
            }
        )


router = SimpleRouter()
router.register("change-requests", ChangeRequestViewSet, basename="change-request")

#: Included by ``flagapp/api/urls.py``.
urlpatterns = router.urls
