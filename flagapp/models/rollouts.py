"""Progressive delivery and experiments: rollout plans, their guardrails, every transition
and every guardrail check, and experiment records.

Why a plan stores ``safe_state``: "roll back" must mean "the flag exactly as it was before
the rollout touched it" (fallthrough, rules, enabled), restored through the services as an
ordinary governed change — not "0% of the new variant", which may differ from what was live.

The state machine itself lives in :mod:`flagapp.rollouts.states`; only
:mod:`flagapp.rollouts.controller` changes ``state`` and writes ``RolloutTransition`` rows.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from flagapp.rollouts.guardrails import Comparison, GuardrailSpec, MetricKind
from flagapp.rollouts.schedule import DEFAULT_STEPS, ScheduleKind
from flagapp.rollouts.states import State

__all__ = [
    "Experiment",
    "RolloutCheck",
    "RolloutGuardrail",
    "RolloutPlan",
    "RolloutTransition",
]


def _default_steps() -> list[int]:
    return list(DEFAULT_STEPS)


class RolloutPlan(models.Model):
    """Moving one flag, in one environment, from ``control_variant`` to
    ``treatment_variant`` in steps (basis points), each held at least ``min_step_seconds``
    and judged by the plan's guardrails."""

    STATE_CHOICES: ClassVar = [(s.value, s.value.replace("_", " ")) for s in State]
    SCHEDULE_CHOICES: ClassVar = [(s.value, s.value.replace("_", "-")) for s in ScheduleKind]
    SOURCE_CHOICES: ClassVar = [("events", "stored SDK events"), ("prometheus", "Prometheus")]

    flag = models.ForeignKey("flagapp.Flag", on_delete=models.CASCADE, related_name="rollouts")
    environment = models.ForeignKey(
        "flagapp.Environment", on_delete=models.CASCADE, related_name="rollouts"
    )
    state = models.CharField(max_length=16, choices=STATE_CHOICES, default=State.DRAFT.value)
    treatment_variant = models.CharField(max_length=100, help_text="The new variant.")
    control_variant = models.CharField(
        max_length=100, help_text="What everyone else keeps getting; guardrails compare to it."
    )
    schedule = models.CharField(
        max_length=16, choices=SCHEDULE_CHOICES, default=ScheduleKind.STEPS.value
    )
    steps = models.JSONField(
        default=_default_steps,
        help_text="Basis points of the treatment per step (100 = 1%); the last is 10000.",
    )
    min_step_seconds = models.PositiveIntegerField(
        default=3600, help_text="Minimum time at each step before the next one."
    )
    salt = models.CharField(
        max_length=200, blank=True, help_text="Bucketing salt (default: the flag key). Fixed."
    )
    metric_source = models.CharField(max_length=16, choices=SOURCE_CHOICES, default="events")
    notify_owners = models.BooleanField(default=True, help_text="Email owners on rollback.")
    #: Where the policy needs approval, the approved change request that authorised the
    #: whole plan (its steps and its rollback); ``approved`` survives the request's deletion.
    change_request = models.ForeignKey(
        "flagapp.ChangeRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="rollouts",
    )
    approved = models.BooleanField(default=False)

    step_index = models.IntegerField(default=-1, help_text="-1 before the first step.")
    current_bps = models.PositiveIntegerField(default=0)
    step_started_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    safe_state = models.JSONField(
        null=True,
        blank=True,
        help_text="The flag state before the first step (rollback restores it).",
    )
    last_check_at = models.DateTimeField(null=True, blank=True)
    last_check = models.JSONField(default=dict, blank=True)
    #: The optimistic-concurrency token of the draft (see
    #: :func:`flagapp.services._base.check_version`): +1 on every edit through
    #: :func:`flagapp.rollouts.plans.update_plan`, so two people editing one draft in the admin
    #: or the API (``If-Match``) cannot overwrite each other. Runtime progress (state, step)
    #: does not move it: a started plan is not editable at all.
    version = models.PositiveIntegerField(default=1)
    #: When the plan last took its content (created, or edited in anything but its change
    #: request and notification flag): an approval given before it approved another plan
    #: (:func:`flagapp.rollouts.plans.approval_problem`).
    edited_at = models.DateTimeField(default=timezone.now)

    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        constraints: ClassVar = [
            # At most one live rollout per flag and environment: two would fight over the
            # fallthrough.
            models.UniqueConstraint(
                fields=["flag", "environment"],
                condition=Q(state__in=["running", "paused"]),
                name="flagapp_rollout_one_live",
            )
        ]
        indexes: ClassVar = [models.Index(fields=["state"], name="flagapp_rollout_state")]

    def __str__(self) -> str:
        """``checkout.new-flow in production: on (running)``: keys, not row ids (the admin's
        titles, breadcrumbs and action messages show it; callers listing plans select the
        flag and environment with them)."""
        state = self.state.replace("_", " ")
        return f"{self.flag.key} in {self.environment.key}: {self.treatment_variant} ({state})"

    @property
    def effective_salt(self) -> str:
        return self.salt or self.flag.key

    @property
    def is_live(self) -> bool:
        return self.state in (State.RUNNING, State.PAUSED)


class RolloutGuardrail(models.Model):
    """One metric that must stay healthy for the plan to progress."""

    METRIC_CHOICES: ClassVar = [(m.value, m.value.replace("_", " ")) for m in MetricKind]
    COMPARISON_CHOICES: ClassVar = [
        (Comparison.ABSOLUTE.value, "treatment > threshold"),
        (Comparison.DELTA.value, "treatment - control > threshold"),
        (Comparison.RATIO.value, "treatment / control > threshold"),
    ]

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="guardrails")
    metric = models.CharField(max_length=16, choices=METRIC_CHOICES)
    event_key = models.CharField(
        max_length=200, default="error", help_text="Tracked event: errors, latency value, ..."
    )
    percentile = models.FloatField(default=95.0, help_text="For latency: which percentile.")
    comparison = models.CharField(
        max_length=16, choices=COMPARISON_CHOICES, default=Comparison.ABSOLUTE.value
    )
    threshold = models.FloatField(help_text="Rates as fractions (0.01 = 1%).")
    min_sample = models.PositiveIntegerField(
        default=1000, help_text="No judgement (no step, no rollback) below this sample."
    )

    class Meta:
        ordering: ClassVar = ["plan", "id"]

    def __str__(self) -> str:
        return f"{self.spec.label} ({self.comparison} {self.threshold:g})"

    @property
    def spec(self) -> GuardrailSpec:
        return GuardrailSpec(
            metric=self.metric,
            threshold=self.threshold,
            event_key=self.event_key,
            percentile=self.percentile,
            comparison=self.comparison,
            min_sample=self.min_sample,
        )


class RolloutTransition(models.Model):
    """The plan's history: every state change and every step, with who and why."""

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="transitions")
    at = models.DateTimeField()
    action = models.CharField(max_length=16)
    from_state = models.CharField(max_length=16)
    to_state = models.CharField(max_length=16)
    from_bps = models.PositiveIntegerField(default=0)
    to_bps = models.PositiveIntegerField(default=0)
    reason = models.TextField()
    automatic = models.BooleanField(default=False)
    actor = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering: ClassVar = ["plan", "at", "id"]

    def __str__(self) -> str:
        return f"{self.action}: {self.from_state} -> {self.to_state} ({self.reason})"


class RolloutCheck(models.Model):
    """One guardrail evaluation of a live plan (the timeline chart's metric series)."""

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="checks")
    at = models.DateTimeField()
    bps = models.PositiveIntegerField()
    status = models.CharField(max_length=16)
    results = models.JSONField(default=list)

    class Meta:
        ordering: ClassVar = ["plan", "at", "id"]
        indexes: ClassVar = [models.Index(fields=["plan", "at"], name="flagapp_rcheck_plan_at")]

    def __str__(self) -> str:
        return f"check {self.at:%H:%M:%S} {self.status}"


class Experiment(models.Model):
    """An experiment on an experiment-type flag in one environment: which track event is the
    conversion, which variant is control, and the planning inputs for the sample size."""

    flag = models.ForeignKey("flagapp.Flag", on_delete=models.CASCADE, related_name="experiments")
    environment = models.ForeignKey(
        "flagapp.Environment", on_delete=models.CASCADE, related_name="experiments"
    )
    name = models.CharField(max_length=200)
    hypothesis = models.TextField(blank=True)
    control_variant = models.CharField(max_length=100)
    conversion_event = models.CharField(max_length=200, help_text="The tracked event that counts.")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    confidence = models.FloatField(default=0.95)
    srm_threshold = models.FloatField(
        default=0.001, help_text="p-value below which the assignment is flagged as broken."
    )
    expected_weights = models.JSONField(
        default=dict,
        blank=True,
        help_text="Intended split {variant: weight}; empty = the flag's current rollout weights.",
    )
    baseline_rate = models.FloatField(null=True, blank=True)
    minimum_detectable_effect = models.FloatField(
        null=True, blank=True, help_text="Absolute (0.01 = one percentage point)."
    )
    #: The optimistic-concurrency token (:func:`flagapp.services._base.check_version`): +1 on
    #: every change through :func:`flagapp.services.experiments.update_experiment`, so two
    #: people editing one experiment (admin or API ``If-Match``) cannot overwrite each other.
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["-started_at", "-id"]

    def __str__(self) -> str:
        return self.name
