"""Rollout and experiment endpoints of the management API.

==============================================  ==========================================
``GET  rollouts/?flag=&environment=&state=``    list
``POST rollouts/``                              draft ``{flag, environment, treatment,
                                                control, steps?|schedule?, step_count?,
                                                min_step_seconds?, guardrails?: [...]}``
``GET  rollouts/{id}/``                         one plan with its transitions (history)
``PATCH rollouts/{id}/``                        edit a draft: any field of POST (omitted
                                                fields keep their value), ``If-Match`` or
                                                ``version`` required (428 without; 409
                                                when stale); 400 on ``state`` once started
``POST rollouts/{id}/start/``                   ``{reason, change_request?}``
``POST rollouts/{id}/pause|resume|rollback/``   ``{reason}``; 409 when the state forbids it
``GET  rollouts/{id}/timeline.svg/``            the timeline chart
``GET  experiments/`` ``POST experiments/``     list / create
``PUT|PATCH experiments/{id}/``                 change; ``If-Match`` or ``version`` required
                                                (428 without, 409 when stale)
``GET  experiments/{id}/results/``              rates, z-test, CI, SRM, sample size
``GET  experiments/{id}/results.svg/``          the results chart
``POST experiments/sample-size/``               ``{baseline_rate, minimum_detectable_effect,
                                                alpha?, power?, relative?}``
==============================================  ==========================================

State changes go through :mod:`flagapp.rollouts.controller` (and so through the services):
the API and the admin refuse and allow exactly the same transitions.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from flagapp.exceptions import FlagValidationError
from flagapp.models import (
    ChangeRequest,
    Environment,
    Experiment,
    Flag,
    RolloutGuardrail,
    RolloutPlan,
    RolloutTransition,
)
from flagapp.rollouts import controller, plans
from flagapp.rollouts.states import InvalidTransition, allowed_actions
from flagapp.services.experiments import EXPERIMENT_FIELDS

from .base import FlagappAPIMixin
from .preconditions import expected_version

__all__ = ["ExperimentViewSet", "RolloutViewSet", "router", "urlpatterns"]


class GuardrailSerializer(serializers.ModelSerializer[RolloutGuardrail]):
    """A guardrail, plus its ``label`` as history reasons name it (``error_rate``...)."""

    class Meta:
        model = RolloutGuardrail
        fields = ["metric", "event_key", "percentile", "comparison", "threshold", "min_sample"]

    def to_representation(self, instance: RolloutGuardrail) -> dict[str, Any]:
        data = dict(super().to_representation(instance))
        data["label"] = instance.spec.label
        return data


class TransitionSerializer(serializers.ModelSerializer[RolloutTransition]):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = RolloutTransition
        fields = [
            "at",
            "action",
            "from_state",
            "to_state",
            "from_bps",
            "to_bps",
            "reason",
            "automatic",
            "actor",
            "details",
        ]
        read_only_fields = fields

    def get_actor(self, obj: RolloutTransition) -> str | None:
        return obj.actor.get_username() if obj.actor else None


class RolloutSerializer(serializers.ModelSerializer[RolloutPlan]):
    flag = serializers.CharField(source="flag.key", read_only=True)
    environment = serializers.CharField(source="environment.key", read_only=True)
    guardrails = GuardrailSerializer(many=True, read_only=True)
    allowed_actions = serializers.SerializerMethodField()

    class Meta:
        model = RolloutPlan
        fields = [
            "id",
            "flag",
            "environment",
            "state",
            "treatment_variant",
            "control_variant",
            "schedule",
            "steps",
            "min_step_seconds",
            "salt",
            "metric_source",
            "step_index",
            "current_bps",
            "step_started_at",
            "started_at",
            "finished_at",
            "last_check_at",
            "last_check",
            "guardrails",
            "allowed_actions",
            "version",
            "created_at",
        ]
        read_only_fields = fields

    def get_allowed_actions(self, obj: RolloutPlan) -> list[str]:
        return [a.value for a in allowed_actions(obj.state) if a.value in _MANUAL]


class RolloutDetailSerializer(RolloutSerializer):
    transitions = TransitionSerializer(many=True, read_only=True)

    class Meta(RolloutSerializer.Meta):
        fields = [*RolloutSerializer.Meta.fields, "safe_state", "transitions"]
        read_only_fields = fields


class RolloutCreateSerializer(serializers.Serializer[Any]):
    flag = serializers.CharField()
    environment = serializers.CharField()
    treatment = serializers.CharField()
    control = serializers.CharField()
    steps = serializers.ListField(child=serializers.IntegerField(), required=False)
    schedule = serializers.ChoiceField(["steps", "linear", "s_curve"], default="steps")
    step_count = serializers.IntegerField(default=5, min_value=1, max_value=100)
    first_step = serializers.IntegerField(default=100, min_value=1, max_value=10000)
    min_step_seconds = serializers.IntegerField(default=3600, min_value=0)
    metric_source = serializers.ChoiceField(["events", "prometheus"], default="events")
    guardrails = serializers.ListField(child=serializers.DictField(), default=list)
    salt = serializers.CharField(default="", allow_blank=True, max_length=200)
    notify_owners = serializers.BooleanField(default=True)


class RolloutUpdateSerializer(RolloutCreateSerializer):
    """PATCH: every field optional and without a default, so an omitted field keeps the
    stored value (:meth:`RolloutViewSet.partial_update`)."""

    flag = serializers.CharField(required=False)
    environment = serializers.CharField(required=False)
    treatment = serializers.CharField(required=False)
    control = serializers.CharField(required=False)
    schedule = serializers.ChoiceField(["steps", "linear", "s_curve"], required=False)
    step_count = serializers.IntegerField(required=False, min_value=1, max_value=100)
    first_step = serializers.IntegerField(required=False, min_value=1, max_value=10000)
    min_step_seconds = serializers.IntegerField(required=False, min_value=0)
    metric_source = serializers.ChoiceField(["events", "prometheus"], required=False)
    guardrails = serializers.ListField(child=serializers.DictField(), required=False)
    salt = serializers.CharField(required=False, allow_blank=True, max_length=200)
    notify_owners = serializers.BooleanField(required=False)
    change_request = serializers.IntegerField(required=False, allow_null=True)


class ReasonSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField()
    change_request = serializers.IntegerField(required=False)


_MANUAL = {"start", "pause", "resume", "rollback"}


class RolloutViewSet(
    FlagappAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[RolloutPlan],
):
    serializer_class = RolloutSerializer
    filterset_fields = ["state"]
    required_permissions = {
        "POST": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
    }
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[RolloutPlan]:
        qs = RolloutPlan.objects.select_related("flag", "environment").prefetch_related(
            "guardrails"
        )
        params = self.request.query_params
        if params.get("flag"):
            qs = qs.filter(flag__key=params["flag"])
        if params.get("environment"):
            qs = qs.filter(environment__key=params["environment"])
        return qs

    def get_serializer_class(self) -> Any:
        if self.action == "retrieve":
            return RolloutDetailSerializer
        return RolloutSerializer

    def create(self, request: Request) -> Response:
        body = RolloutCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        flag = get_object_or_404(Flag, key=data.pop("flag"))
        env = get_object_or_404(Environment, key=data.pop("environment"))
        plan = controller.create_plan(
            flag,
            env,
            treatment=data.pop("treatment"),
            control=data.pop("control"),
            actor=request.user,
            steps=data.pop("steps", None),
            **data,
        )
        return Response(RolloutDetailSerializer(plan).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: Any = None) -> Response:
        """A draft edited through :func:`flagapp.rollouts.plans.update_plan` (the admin's
        path): fields left out keep their stored value, the step list included unless one
        of ``schedule``/``steps``/``step_count``/``first_step`` is sent."""
        plan = get_object_or_404(RolloutPlan, pk=pk)
        expected = expected_version(request)
        body = RolloutUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        step_keys = ("schedule", "steps", "step_count", "first_step")
        steps: dict[str, Any] = {"schedule": None}
        if any(key in data for key in step_keys):
            steps = {"schedule": data.get("schedule", "steps"), "steps": data.get("steps")}
            steps.update({k: data[k] for k in ("step_count", "first_step") if k in data})
        if "change_request" in data:
            cr_id = data["change_request"]
            change_request = None if cr_id is None else get_object_or_404(ChangeRequest, pk=cr_id)
        else:
            change_request = plan.change_request
        stored_guardrails = [
            {name: getattr(g, name) for name in GuardrailSerializer.Meta.fields}
            for g in plan.guardrails.all()
        ]
        updated = plans.update_plan(
            plan,
            flag=get_object_or_404(Flag, key=data["flag"]) if "flag" in data else None,
            environment=(
                get_object_or_404(Environment, key=data["environment"])
                if "environment" in data
                else None
            ),
            treatment=data.get("treatment", plan.treatment_variant),
            control=data.get("control", plan.control_variant),
            min_step_seconds=data.get("min_step_seconds", plan.min_step_seconds),
            metric_source=data.get("metric_source", plan.metric_source),
            guardrails=data.get("guardrails", stored_guardrails),
            salt=data.get("salt", plan.salt),
            notify_owners=data.get("notify_owners", plan.notify_owners),
            change_request=change_request,
            expected_version=expected,
            **steps,
        )
        return Response(RolloutDetailSerializer(updated).data)

    def _transition(self, request: Request, pk: Any, name: str) -> Response:
        plan = get_object_or_404(RolloutPlan, pk=pk)
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reason = body.validated_data["reason"]
        try:
            if name == "start":
                cr = None
                cr_id = body.validated_data.get("change_request")
                if cr_id is not None:
                    cr = get_object_or_404(ChangeRequest, pk=cr_id)
                # controller.start_rollout: the admin's guards too (never lowers exposure)
                plan = controller.start_rollout(
                    plan, actor=request.user, reason=reason, change_request=cr
                )
            else:
                func = {
                    "pause": controller.pause,
                    "resume": controller.resume,
                    "rollback": controller.rollback,
                }[name]
                plan = func(plan, actor=request.user, reason=reason)
        except InvalidTransition as exc:
            return Response(
                {"detail": str(exc), "state": exc.state}, status=status.HTTP_409_CONFLICT
            )
        plan.refresh_from_db()
        return Response(RolloutDetailSerializer(plan).data)

    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: Any = None) -> Response:
        return self._transition(request, pk, "start")

    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: Any = None) -> Response:
        return self._transition(request, pk, "pause")

    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: Any = None) -> Response:
        return self._transition(request, pk, "resume")

    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: Any = None) -> Response:
        return self._transition(request, pk, "rollback")

    @action(detail=True, methods=["get"], url_path="timeline.svg")
    def timeline_svg(self, request: Request, pk: Any = None) -> HttpResponse:
        from flagapp.rollouts.views import plan_timeline_svg

        plan = get_object_or_404(self.get_queryset(), pk=pk)
        return HttpResponse(plan_timeline_svg(plan), content_type="image/svg+xml")


class ExperimentSerializer(serializers.ModelSerializer[Experiment]):
    flag = serializers.SlugRelatedField(slug_field="key", queryset=Flag.objects.all())
    environment = serializers.SlugRelatedField(slug_field="key", queryset=Environment.objects.all())

    class Meta:
        model = Experiment
        fields = ["id", *EXPERIMENT_FIELDS, "version", "created_at"]
        read_only_fields = ["id", "version", "created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The services' validation (the admin runs the same), on the stored values merged
        with the request's."""
        from flagapp.services.experiments import validate_experiment

        current: dict[str, Any] = {}
        if self.instance is not None:
            current = {name: getattr(self.instance, name) for name in EXPERIMENT_FIELDS}
        try:
            validate_experiment(current | attrs)
        except FlagValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return attrs


class SampleSizeSerializer(serializers.Serializer[Any]):
    baseline_rate = serializers.FloatField(min_value=0.0, max_value=1.0)
    minimum_detectable_effect = serializers.FloatField()
    alpha = serializers.FloatField(default=0.05, min_value=0.0001, max_value=0.5)
    power = serializers.FloatField(default=0.8, min_value=0.5, max_value=0.9999)
    relative = serializers.BooleanField(default=False)


class ExperimentViewSet(
    FlagappAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[Experiment],
):
    serializer_class = ExperimentSerializer
    queryset = Experiment.objects.select_related("flag", "environment")

    def perform_create(self, serializer: Any) -> None:
        from flagapp.services.experiments import create_experiment

        serializer.instance = create_experiment(
            actor=self.request.user, **serializer.validated_data
        )

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """PUT and PATCH name the version they edit (``If-Match`` or ``version``: 428
        without, 409 when stale), as every versioned resource's writes do."""
        self._expected_version = expected_version(request)
        return super().update(request, *args, **kwargs)

    def perform_update(self, serializer: Any) -> None:
        from flagapp.services.experiments import update_experiment

        serializer.instance = update_experiment(
            serializer.instance,
            actor=self.request.user,
            expected_version=self._expected_version,
            **serializer.validated_data,
        )

    @action(detail=True, methods=["get"])
    def results(self, request: Request, pk: Any = None) -> Response:
        from flagapp.rollouts.experiments import analyse

        return Response(analyse(self.get_object()).as_dict())

    @action(detail=True, methods=["get"], url_path="results.svg")
    def results_svg(self, request: Request, pk: Any = None) -> HttpResponse:
        from flagapp.rollouts.experiments import analyse
        from flagapp.rollouts.views import experiment_results_svg

        svg = experiment_results_svg(analyse(self.get_object()))
        return HttpResponse(svg, content_type="image/svg+xml")

    @action(
        detail=False,
        methods=["post"],
        url_path="sample-size",
        permission_classes=FlagappAPIMixin.permission_classes[:1],
    )
    def sample_size(self, request: Request) -> Response:
        from flagapp.rollouts.stats import sample_size_per_variant

        body = SampleSizeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        try:
            n = sample_size_per_variant(
                d["baseline_rate"],
                d["minimum_detectable_effect"],
                alpha=d["alpha"],
                power=d["power"],
                relative=d["relative"],
            )
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"sample_size_per_variant": n, **d})


router = SimpleRouter()
router.register("rollouts", RolloutViewSet, basename="rollout")
router.register("experiments", ExperimentViewSet, basename="experiment")

urlpatterns = router.urls
