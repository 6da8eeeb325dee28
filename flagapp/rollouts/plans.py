"""Rollout plans before they run: a validated draft, and what authorises its steps.

:func:`create_plan` checks a plan's fields and guardrails (every problem at once, as a
``FlagValidationError`` keyed by field) and stores a draft, :func:`update_plan` rewrites a
draft under the same checks (the admin writes plans only through these two); nothing is served until
:func:`flagapp.rollouts.controller.start`. Where the policy needs approval, a plan is
approved once, as a whole: :func:`first_step_change` is the change to propose,
:func:`approves_plan` tells whether a change request approves *this* plan as it is now
(:func:`approval_problem` says why not), and
:func:`authorization` carries that approval to each step and to the rollback.

The state machine that moves a plan is :mod:`flagapp.rollouts.controller`; this module
writes only drafts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from flagapp.exceptions import FlagValidationError
from flagapp.models import ChangeRequest, Environment, Flag, RolloutGuardrail, RolloutPlan
from flagapp.policy import Approval, GrantedApproval, change_request_covers, requires_approval
from flagapp.services._base import bump, check_version

from .guardrails import Comparison, MetricKind
from .schedule import ScheduleKind, build_steps, rollout_serve, validate_steps

__all__ = [
    "PlanAuthorization",
    "approval_problem",
    "approves_plan",
    "authorization",
    "create_plan",
    "first_step_change",
    "plans_started_by",
    "update_plan",
]

#: What the services see as "an approved change request" for a plan's own steps: the plan
#: was approved as a whole (``RolloutPlan.change_request``); this carries that approval to
#: each step and to the rollback, restricted to the plan's flag and environment.
PlanAuthorization = GrantedApproval


def create_plan(
    flag: Flag,
    environment: Environment,
    *,
    treatment: str,
    control: str,
    actor: Any = None,
    steps: Sequence[int] | None = None,
    schedule: str = ScheduleKind.STEPS,
    step_count: int = 5,
    first_step: int = 100,
    min_step_seconds: int = 3600,
    guardrails: Iterable[Mapping[str, Any]] = (),
    metric_source: str = "events",
    salt: str = "",
    notify_owners: bool = True,
    change_request: ChangeRequest | None = None,
) -> RolloutPlan:
    """A draft plan with its guardrails; nothing is served until ``controller.start``.

    Every problem is reported at once (``FlagValidationError`` keyed by field); nothing is
    stored then. The API and the admin both create plans here."""
    step_list, guardrail_rows = _validated(
        flag,
        treatment=treatment,
        control=control,
        steps=steps,
        schedule=schedule,
        step_count=step_count,
        first_step=first_step,
        min_step_seconds=min_step_seconds,
        guardrails=guardrails,
        metric_source=metric_source,
    )
    with transaction.atomic():
        plan = RolloutPlan.objects.create(
            flag=flag,
            environment=environment,
            treatment_variant=treatment,
            control_variant=control,
            schedule=schedule,
            steps=step_list,
            min_step_seconds=min_step_seconds,
            metric_source=metric_source,
            salt=salt,
            notify_owners=notify_owners,
            change_request=change_request,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        for row in guardrail_rows:
            RolloutGuardrail.objects.create(plan=plan, **row)
    return plan


def update_plan(
    plan: RolloutPlan,
    *,
    treatment: str,
    control: str,
    flag: Flag | None = None,
    environment: Environment | None = None,
    steps: Sequence[int] | None = None,
    schedule: str | None = ScheduleKind.STEPS,
    step_count: int = 5,
    first_step: int = 100,
    min_step_seconds: int = 3600,
    guardrails: Iterable[Mapping[str, Any]] = (),
    metric_source: str = "events",
    salt: str = "",
    notify_owners: bool = True,
    change_request: ChangeRequest | None = None,
    expected_version: int | None = None,
) -> RolloutPlan:
    """A draft plan rewritten as a whole, checked exactly like :func:`create_plan`; its
    guardrails are replaced by ``guardrails``.

    Only a draft can be edited: once started, the plan is what was approved and served
    (``FlagValidationError`` on ``state``). ``expected_version`` is the version the editor
    read: a stale one is refused with ``VersionConflict`` unless the write asks for exactly
    what is stored (the retry of an edit whose answer was lost), the rule of every versioned
    resource. Nothing is written when anything is refused.

    ``schedule=None`` keeps the stored step list as it is when no ``steps`` are given (a
    linear or S-curve list was built from a count that is not stored), and means explicit
    ``steps`` otherwise."""
    flag = flag if flag is not None else plan.flag
    environment = environment if environment is not None else plan.environment
    kept_schedule: str | None = None
    if schedule is None:
        if steps is None:  # the stored list, checked as explicit steps, under its own label
            kept_schedule, steps = plan.schedule, list(plan.steps or [])
        schedule = ScheduleKind.STEPS
    try:
        step_list, guardrail_rows = _validated(
            flag,
            treatment=treatment,
            control=control,
            steps=steps,
            schedule=schedule,
            step_count=step_count,
            first_step=first_step,
            min_step_seconds=min_step_seconds,
            guardrails=guardrails,
            metric_source=metric_source,
        )
        errors: dict[str, list[str]] = {}
    except FlagValidationError as exc:
        errors = dict(exc.message_dict)
    with transaction.atomic():
        locked = RolloutPlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state != "draft":
            errors["state"] = [f"only a draft plan can be edited (this one is {locked.state})"]
        if errors:
            raise FlagValidationError(errors)
        fields: dict[str, Any] = {
            "flag_id": flag.pk,
            "environment_id": environment.pk,
            "treatment_variant": treatment,
            "control_variant": control,
            "schedule": kept_schedule or schedule,
            "steps": step_list,
            "min_step_seconds": min_step_seconds,
            "metric_source": metric_source,
            "salt": salt,
            "notify_owners": notify_owners,
            "change_request_id": change_request.pk if change_request is not None else None,
        }
        same_content = all(
            getattr(locked, k) == v for k, v in fields.items() if k not in _NOT_CONTENT
        ) and (_stored_guardrails(locked) == _comparable(guardrail_rows))
        unchanged = same_content and all(getattr(locked, k) == fields[k] for k in _NOT_CONTENT)
        if check_version(locked, expected_version, unchanged=unchanged):
            return locked
        for name, value in fields.items():
            setattr(locked, name, value)
        if not same_content:  # an approval given before this edit approved another plan
            locked.edited_at = timezone.now()
        bump(locked)
        locked.save()
        locked.guardrails.all().delete()
        for row in guardrail_rows:
            RolloutGuardrail.objects.create(plan=locked, **row)
    return locked


def _comparable(rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Guardrail rows in one order and shape, to tell an identical rewrite from a change."""
    return sorted(tuple(row.get(name) for name in _GUARDRAIL_FIELDS) for row in rows)


def _stored_guardrails(plan: RolloutPlan) -> list[tuple[Any, ...]]:
    return _comparable(plan.guardrails.values(*_GUARDRAIL_FIELDS))


#: What an edit may change without changing what a reviewer approved: selecting the
#: approving change request itself, and whether owners are mailed on rollback.
_NOT_CONTENT = ("change_request_id", "notify_owners")

#: A guardrail's fields, as :func:`create_plan` takes them and the model stores them.
_GUARDRAIL_FIELDS = ("metric", "threshold", "event_key", "percentile", "comparison", "min_sample")


def _validated(
    flag: Flag,
    *,
    treatment: str,
    control: str,
    steps: Sequence[int] | None,
    schedule: str,
    step_count: int,
    first_step: int,
    min_step_seconds: int,
    guardrails: Iterable[Mapping[str, Any]],
    metric_source: str,
) -> tuple[list[int], list[dict[str, Any]]]:
    """The plan's step list and guardrail rows, or every problem as a FlagValidationError."""
    errors: dict[str, list[str]] = {}
    variants = set(flag.variants.values_list("key", flat=True))
    if treatment not in variants:
        errors["treatment_variant"] = [f"{treatment!r} is not a variant of {flag.key}"]
    if control not in variants:
        errors["control_variant"] = [f"{control!r} is not a variant of {flag.key}"]
    if treatment == control:
        errors["treatment_variant"] = ["treatment and control must differ"]
    try:
        step_list = list(build_steps(schedule, steps=steps, count=step_count, first=first_step))
    except ValueError as exc:
        errors["schedule"] = [str(exc)]
        step_list = []
    if step_list:
        step_errors = validate_steps(step_list)
        if step_errors:
            errors["steps"] = step_errors
    if min_step_seconds < 0:
        errors["min_step_seconds"] = ["must be >= 0"]
    if metric_source not in ("events", "prometheus"):
        errors["metric_source"] = ["must be 'events' or 'prometheus'"]
    guardrail_rows = [_guardrail_row(i, g, errors) for i, g in enumerate(guardrails)]
    if errors:
        raise FlagValidationError(errors)
    return step_list, guardrail_rows


def _guardrail_row(
    index: int, g: Mapping[str, Any], errors: dict[str, list[str]]
) -> dict[str, Any]:
    """One guardrail as stored, or its problems under ``errors["guardrails"]``, each
    naming its row and field (``guardrails[1].percentile: ...``, the engine's path style):
    the API caller and the admin's inline row both learn which value to fix."""
    msgs: list[str] = []

    def refuse(field: str, text: str) -> None:
        msgs.append(f"guardrails[{index}]{'.' + field if field else ''}: {text}")

    if not isinstance(g, Mapping):
        refuse("", "must be an object")
        errors.setdefault("guardrails", []).extend(msgs)
        return {}
    unknown = set(g) - set(_GUARDRAIL_FIELDS)
    if unknown:
        refuse("", f"unknown guardrail fields: {', '.join(sorted(map(str, unknown)))}")
    metric = g.get("metric")
    if not isinstance(metric, str) or metric not in {m.value for m in MetricKind}:
        refuse("metric", f"must be one of {', '.join(m.value for m in MetricKind)}")
    comparison = g.get("comparison", Comparison.ABSOLUTE.value)
    if not isinstance(comparison, str) or comparison not in {c.value for c in Comparison}:
        refuse("comparison", f"must be one of {', '.join(c.value for c in Comparison)}")
    threshold = g.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        refuse("threshold", "must be a number")
    min_sample = g.get("min_sample", 1000)
    if isinstance(min_sample, bool) or not isinstance(min_sample, int) or min_sample < 1:
        refuse("min_sample", "must be a positive integer")
    percentile = g.get("percentile", 95.0)
    if (
        isinstance(percentile, bool)
        or not isinstance(percentile, int | float)
        or not 0 < percentile <= 100
    ):
        refuse("percentile", "must be in (0, 100]")
    if msgs:
        errors.setdefault("guardrails", []).extend(msgs)
        return {}
    default_event = "error" if g["metric"] == MetricKind.ERROR_RATE else ""
    event_key = g.get("event_key", default_event)
    if not isinstance(event_key, str) or not event_key or len(event_key) > 200:
        refuse("event_key", f"{g['metric']} needs an event key (a name of at most 200 characters)")
        errors.setdefault("guardrails", []).extend(msgs)
        return {}
    return {
        "metric": g["metric"],
        "threshold": float(threshold),  # type: ignore[arg-type]
        "event_key": event_key,
        "percentile": float(percentile),
        "comparison": comparison,
        "min_sample": min_sample,
    }


def first_step_change(plan: RolloutPlan) -> dict[str, Any]:
    """The first step as an ordinary ``update_flag_state`` change (``ApprovalRequired.change``
    shape): what to propose as a change request where the policy needs approval."""
    return {
        "operation": "update_flag_state",
        "flag": plan.flag.key,
        "environment": plan.environment.key,
        "params": {
            "fallthrough": rollout_serve(
                plan.treatment_variant,
                plan.control_variant,
                int(plan.steps[0]),
                plan.effective_salt,
            )
        },
    }


def approves_plan(change_request: Approval | None, plan: RolloutPlan) -> bool:
    """Whether ``change_request`` authorises this plan (:func:`approval_problem` says why
    not)."""
    return change_request is not None and approval_problem(change_request, plan) is None


def plans_started_by(change_request: ChangeRequest) -> list[RolloutPlan]:
    """The draft plans whose first step ``change_request`` is: what its reviewer approves
    along with the first step (every later step and the rollback), shown on the request's
    page so that the reviewer sees the whole rollout, not one percentage."""
    if (
        change_request.kind != "update_flag_state"
        or change_request.flag_id is None
        or change_request.environment_id is None
    ):
        return []
    params = (change_request.payload or {}).get("params") or {}
    drafts = (
        RolloutPlan.objects.filter(
            flag_id=change_request.flag_id,
            environment_id=change_request.environment_id,
            state="draft",
        )
        .select_related("flag", "environment")
        .prefetch_related("guardrails")
        .order_by("pk")
    )
    return [
        plan
        for plan in drafts
        if plan.steps
        and params.get("fallthrough") == first_step_change(plan)["params"]["fallthrough"]
    ]


def approval_problem(change_request: Approval, plan: RolloutPlan) -> str | None:
    """Why ``change_request`` does not authorise this plan, or None when it does.

    A governance ``ChangeRequest`` must have been approved by a reviewer (status approved,
    or applied — approving applies it), be about this flag and environment, and be the
    plan's first step (an ``update_flag_state`` serving exactly the first step's
    fallthrough): the reviewer approved this rollout, not some other change. It must also
    have been approved after the plan took its present content (``edited_at``): the
    approval carries every later step and the rollback, so a plan edited after it (faster
    steps, a looser guardrail) is not what was approved. And it approves one rollout: a
    request another plan has started with does not start a second one. Any other object is
    judged like the services judge one (``flagapp.policy.change_request_covers``).
    """
    if not isinstance(change_request, ChangeRequest):
        if change_request_covers(change_request, plan.flag, plan.environment):
            return None
        return "the approval does not cover this flag and environment"
    if change_request.status not in (ChangeRequest.STATUS_APPROVED, ChangeRequest.STATUS_APPLIED):
        return f"change request #{change_request.pk} is {change_request.status}, not approved"
    if (change_request.flag_id, change_request.environment_id) != (
        plan.flag_id,
        plan.environment_id,
    ):
        return f"change request #{change_request.pk} is about another flag or environment"
    params = (change_request.payload or {}).get("params") or {}
    expected = first_step_change(plan)["params"]["fallthrough"]
    if change_request.kind != "update_flag_state" or params.get("fallthrough") != expected:
        return f"change request #{change_request.pk} is not this plan's first step"
    if change_request.reviewed_at is None or change_request.reviewed_at < plan.edited_at:
        return (
            f"the plan was edited after change request #{change_request.pk} was approved: "
            "propose its first step again"
        )
    used = (
        RolloutPlan.objects.filter(change_request=change_request)
        .exclude(pk=plan.pk)
        .exclude(state="draft")
        .values_list("pk", flat=True)
        .first()
    )
    if used is not None:
        return f"change request #{change_request.pk} already started rollout plan {used}"
    return None


def authorization(plan: RolloutPlan) -> GrantedApproval | None:
    """The approval each step and the rollback of an approved plan hand to the services
    (None where the policy needs none, or the plan was never approved)."""
    if not requires_approval(plan.flag, plan.environment):
        return None
    if not plan.approved:
        return None
    return GrantedApproval(plan.flag_id, plan.environment_id)
