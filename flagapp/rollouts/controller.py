"""The rollout controller: the only code that moves a plan through its state machine.

Every step is an ordinary governed change: ``flagapp.services.update_flag_state`` with the
step's ``fallthrough`` (validated by the engine, audited with a reason, published on
commit). A rollout in an environment that needs approval is approved once, as a whole: the
approved change request given to :func:`start` authorises its steps and its rollback.

The clock is injectable (``now=``) everywhere so tests and the simulation can advance time
without sleeping. :func:`tick` is what the Celery beat task runs every
minute (``flagapp.tasks.PERIODIC_TASKS``): a breach found by a tick is rolled back in
that same tick, so a rollback happens within one task interval of the data showing it.

Kept apart: drafts and their approval (:mod:`flagapp.rollouts.plans`: ``create_plan``,
``first_step_change``) and the guardrail measurement of a step
(:mod:`flagapp.rollouts.measurement`: ``measure``, ``metric_source_for``); both are
re-exported here, the names callers have always used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from flagapp.documents import rules_as_dicts
from flagapp.exceptions import ApprovalRequired, FlagValidationError
from flagapp.models import ChangeRequest, FlagState, RolloutCheck, RolloutPlan
from flagapp.policy import Approval, requires_approval
from flagapp.services.rollouts import lowers_exposure
from flagapp.services.states import update_flag_state

from .guardrails import GuardrailResult, Status, overall_status
from .measurement import measure, metric_source_for
from .metrics import MetricSource, MetricSourceError
from .plans import (
    PlanAuthorization,
    approval_problem,
    approves_plan,
    authorization,
    create_plan,
    first_step_change,
    update_plan,
)
from .schedule import TOTAL_WEIGHT, format_bps, rollout_serve
from .states import Action, State, next_state
from .transitions import _clean_reason, _lock, _now, _record, pause

__all__ = [
    "CheckOutcome",
    "PlanAuthorization",
    "create_plan",
    "first_step_change",
    "measure",
    "metric_source_for",
    "pause",
    "resume",
    "rollback",
    "run_check",
    "start",
    "start_rollout",
    "tick",
    "update_plan",
]

logger = logging.getLogger("flagapp.rollouts")


@dataclass
class CheckOutcome:
    plan_id: int
    action: str  # "advanced" | "completed" | "rolled_back" | "waiting" | "paused" | "error"
    status: str
    message: str
    bps: int
    results: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan_id,
            "action": self.action,
            "status": self.status,
            "message": self.message,
            "bps": self.bps,
            "results": self.results,
        }


# ---------------------------------------------------------------------------------------
# helpers


def _state_row(plan: RolloutPlan) -> FlagState | None:
    return FlagState.objects.filter(
        flag_id=plan.flag_id, environment_id=plan.environment_id
    ).first()


#: The controller's name for the one mapper's "a state's rules as dicts" (tests compare it).
_rules_of = rules_as_dicts


def _apply_step(plan: RolloutPlan, bps: int, *, actor: Any, reason: str) -> None:
    update_flag_state(
        plan.flag,
        plan.environment,
        actor=actor,
        reason=reason,
        fallthrough=rollout_serve(
            plan.treatment_variant, plan.control_variant, bps, plan.effective_salt
        ),
        change_request=authorization(plan),
    )


# ---------------------------------------------------------------------------------------
# moving plans


def _fallthrough_before(plan: RolloutPlan, state: FlagState) -> Any:
    """The fallthrough to restore on rollback. Normally the current one; but where the first
    step was approved as a change request, approving it already applied it, so the safe
    fallthrough is the last one in the state's history that was not the first step (or the
    control variant if there is none)."""
    first = first_step_change(plan)["params"]["fallthrough"]
    if state.fallthrough != first:
        return state.fallthrough
    for record in state.history.order_by("-history_date", "-history_id"):
        if record.fallthrough != first:
            return record.fallthrough
    return {"variant": plan.control_variant}


def start(
    plan: RolloutPlan,
    *,
    actor: Any,
    reason: str,
    change_request: Approval | None = None,
    now: datetime | None = None,
) -> RolloutPlan:
    """draft -> running: remember the last safe state, then serve the first step.

    Where the policy needs approval (high-risk flag, protected environment), an approved
    change request covering this flag and environment must be given: it authorises the
    whole plan (every step and the rollback)."""
    reason = _clean_reason(reason)
    at = _now(now)
    with transaction.atomic():
        plan = _lock(plan)
        to_state = next_state(plan.state, Action.START)
        if requires_approval(plan.flag, plan.environment):
            if not approves_plan(change_request, plan):
                problem = (
                    approval_problem(change_request, plan) if change_request is not None else None
                )
                raise ApprovalRequired(
                    first_step_change(plan),
                    "this rollout needs an approved change request for its first step "
                    "(propose the change this error carries, have it approved, then start "
                    "the plan with that request: it authorises every step and the rollback)"
                    + (f"; {problem}" if problem else ""),
                )
            if isinstance(change_request, ChangeRequest):
                plan.change_request = change_request
            plan.approved = True
        state = _state_row(plan)
        if state is None or not state.enabled:
            raise FlagValidationError(
                {
                    "__all__": [
                        f"{plan.flag.key} is off in {plan.environment.key}: turn it on "
                        "(serving the control variant) before starting a rollout"
                    ]
                }
            )
        plan.safe_state = {
            "enabled": state.enabled,
            "fallthrough": _fallthrough_before(plan, state),
            "prerequisites": state.prerequisites,
            "rules": _rules_of(state),
            "version": state.version,
        }
        first = int(plan.steps[0])
        plan.state = to_state.value
        plan.step_index = 0
        plan.current_bps = first
        plan.started_at = at
        plan.step_started_at = at
        plan.save()
        step_reason = (
            f"rollout #{plan.pk}: start at {format_bps(first)} of {plan.treatment_variant} "
            f"- {reason}"
        )
        _apply_step(plan, first, actor=actor, reason=step_reason)
        _record(
            plan,
            Action.START,
            at=at,
            reason=reason,
            actor=actor,
            automatic=False,
            from_state=State.DRAFT.value,
            from_bps=0,
        )
        if first == TOTAL_WEIGHT:  # a one-step plan: started and done
            plan.state = next_state(plan.state, Action.COMPLETE).value
            plan.finished_at = at
            plan.save()
            _record(
                plan,
                Action.COMPLETE,
                at=at,
                reason="the first step is 100%",
                actor=actor,
                automatic=True,
                from_state=State.RUNNING.value,
                from_bps=first,
            )
    return plan


def start_rollout(
    plan: RolloutPlan,
    *,
    actor: Any,
    reason: str,
    change_request: Approval | None = None,
    now: datetime | None = None,
) -> RolloutPlan:
    """:func:`start` unless the first step would lower what the flag already serves
    (``services.rollouts.lowers_exposure``: a manual 10 % must not drop to a 1 % first
    step): refused with a ``FlagValidationError`` on ``steps``, nothing changed. What the
    admin's Start action and the API's ``start`` call."""
    lowered = lowers_exposure(plan)
    if lowered:
        raise FlagValidationError({"steps": [lowered]})
    return start(plan, actor=actor, reason=reason, change_request=change_request, now=now)


def resume(
    plan: RolloutPlan, *, actor: Any, reason: str, now: datetime | None = None
) -> RolloutPlan:
    """paused -> running: the step clock restarts, so the current step gets its full
    minimum time (and its minimum sample) again."""
    reason = _clean_reason(reason)
    at = _now(now)
    with transaction.atomic():
        plan = _lock(plan)
        plan.state = next_state(plan.state, Action.RESUME).value
        plan.step_started_at = at
        plan.save()
        # Re-assert the current step in case someone edited the fallthrough meanwhile.
        _apply_step(
            plan,
            plan.current_bps,
            actor=actor,
            reason=f"rollout #{plan.pk}: resume at {format_bps(plan.current_bps)} - {reason}",
        )
        _record(
            plan,
            Action.RESUME,
            at=at,
            reason=reason,
            actor=actor,
            automatic=False,
            from_state=State.PAUSED.value,
            from_bps=plan.current_bps,
        )
    return plan


def rollback(
    plan: RolloutPlan,
    *,
    actor: Any,
    reason: str,
    automatic: bool = False,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> RolloutPlan:
    """running|paused -> rolled_back: restore the last safe state (enabled, fallthrough,
    prerequisites, rules as they were before the first step) through the services; the
    owners are emailed (``notify_owners``) by the notification dispatcher, after COMMIT."""
    reason = _clean_reason(reason)
    at = _now(now)
    with transaction.atomic():
        plan = _lock(plan)
        from_state = plan.state
        to_state = next_state(plan.state, Action.ROLLBACK)
        safe = plan.safe_state or {}
        from_bps = plan.current_bps
        current = _state_row(plan)
        current_enabled = current.enabled if current is not None else True
        update_flag_state(
            plan.flag,
            plan.environment,
            actor=actor,
            reason=f"rollout #{plan.pk}: {reason}",
            # Never undo a kill switch pulled during the rollout: off stays off.
            enabled=bool(safe.get("enabled", True)) and bool(current_enabled),
            fallthrough=safe.get("fallthrough"),
            prerequisites=safe.get("prerequisites", []),
            rules=safe.get("rules", []),
            change_request=authorization(plan),
        )
        plan.state = to_state.value
        plan.current_bps = 0
        plan.finished_at = at
        plan.save()
        _record(
            plan,
            Action.ROLLBACK,
            at=at,
            reason=reason,
            actor=actor,
            automatic=automatic,
            from_state=from_state,
            from_bps=from_bps,
            details=details,
        )
    return plan


def _advance(plan: RolloutPlan, *, at: datetime, results: list[GuardrailResult]) -> str:
    from_bps = plan.current_bps
    next_index = plan.step_index + 1
    bps = int(plan.steps[next_index])
    evidence = "; ".join(r.message for r in results) or "no guardrails"
    plan.step_index = next_index
    plan.current_bps = bps
    plan.step_started_at = at
    action = Action.ADVANCE
    if bps == TOTAL_WEIGHT:
        action = Action.COMPLETE
        plan.finished_at = at
    plan.state = next_state(plan.state, action).value
    plan.save()
    step_reason = (
        f"rollout #{plan.pk}: step {next_index + 1}/{len(plan.steps)} "
        f"{format_bps(from_bps)} -> {format_bps(bps)} ({evidence})"
    )
    _apply_step(plan, bps, actor=None, reason=step_reason)
    reason = f"{format_bps(from_bps)} -> {format_bps(bps)}: {evidence}"
    _record(
        plan,
        action,
        at=at,
        reason=reason,
        actor=None,
        automatic=True,
        from_state=State.RUNNING.value,
        from_bps=from_bps,
        details={"results": [r.as_dict() for r in results]},
    )
    return "completed" if action == Action.COMPLETE else "advanced"


# ---------------------------------------------------------------------------------------
# checking


def run_check(
    plan: RolloutPlan, *, now: datetime | None = None, source: MetricSource | None = None
) -> CheckOutcome:
    """One controller decision for one live plan: rollback on a breach, else step when the
    minimum time has passed and every guardrail has its minimum sample and passes."""
    at = _now(now)
    with transaction.atomic():
        plan = _lock(plan)
        if plan.state not in (State.RUNNING, State.PAUSED):
            return CheckOutcome(
                plan.pk, "skipped", plan.state, f"plan is {plan.state}", plan.current_bps
            )
        # Someone changed the fallthrough behind the plan's back: stop stepping.
        state = _state_row(plan)
        expected = rollout_serve(
            plan.treatment_variant, plan.control_variant, plan.current_bps, plan.effective_salt
        )
        interference = None
        if state is None or state.fallthrough != expected:
            interference = "the flag's fallthrough was changed outside the rollout; paused"
        elif not state.enabled:
            interference = (
                f"the flag was turned off in {plan.environment.key} (kill switch); paused"
            )
        if plan.state == State.RUNNING and interference is not None:
            msg = interference
            plan.state = next_state(plan.state, Action.PAUSE).value
            plan.last_check_at, plan.last_check = at, {"status": "paused", "message": msg}
            plan.save()
            _record(
                plan,
                Action.PAUSE,
                at=at,
                reason=msg,
                actor=None,
                automatic=True,
                from_state=State.RUNNING.value,
                from_bps=plan.current_bps,
            )
            return CheckOutcome(plan.pk, "paused", "paused", msg, plan.current_bps)
        try:
            results = measure(plan, now=at, source=source)
        except MetricSourceError as exc:
            msg = f"metric source error: {exc}"
            plan.last_check_at, plan.last_check = at, {"status": "error", "message": msg}
            plan.save(update_fields=["last_check_at", "last_check", "updated_at"])
            RolloutCheck.objects.create(
                plan=plan, at=at, bps=plan.current_bps, status="error", results=[{"message": msg}]
            )
            return CheckOutcome(plan.pk, "error", "error", msg, plan.current_bps)
        status = overall_status(results)
        dicts = [r.as_dict() for r in results]
        RolloutCheck.objects.create(
            plan=plan, at=at, bps=plan.current_bps, status=status.value, results=dicts
        )
        plan.last_check_at = at
        if status is Status.BREACH:
            breach = "; ".join(r.message for r in results if r.status is Status.BREACH)
            reason = f"automatic rollback: {breach}"
            plan.last_check = {"status": "breach", "message": reason, "results": dicts}
            plan.save(update_fields=["last_check_at", "last_check", "updated_at"])
            rollback(
                plan, actor=None, reason=reason, automatic=True, details={"results": dicts}, now=at
            )
            return CheckOutcome(plan.pk, "rolled_back", status.value, reason, 0, dicts)
        elapsed = (at - (plan.step_started_at or at)).total_seconds()
        due = elapsed >= plan.min_step_seconds
        if plan.state == State.PAUSED:
            action, msg = "waiting", "paused"
        elif not due:
            left = timedelta(seconds=int(plan.min_step_seconds - elapsed))
            action, msg = "waiting", f"minimum step time: {left} left"
        elif status is Status.INSUFFICIENT:
            waiting = "; ".join(r.message for r in results if r.status is Status.INSUFFICIENT)
            action, msg = "waiting", f"waiting for the minimum sample: {waiting}"
        else:
            plan.last_check = {"status": status.value, "message": "step taken", "results": dicts}
            action = _advance(plan, at=at, results=results)
            return CheckOutcome(
                plan.pk,
                action,
                status.value,
                f"now at {format_bps(plan.current_bps)}",
                plan.current_bps,
                dicts,
            )
        plan.last_check = {"status": status.value, "message": msg, "results": dicts}
        plan.save(update_fields=["last_check_at", "last_check", "updated_at"])
        return CheckOutcome(plan.pk, action, status.value, msg, plan.current_bps, dicts)


def tick(*, now: datetime | None = None, source: MetricSource | None = None) -> list[CheckOutcome]:
    """Check every live plan once (the beat task). One plan's failure does not stop the
    others; it is logged and reported as an ``error`` outcome."""
    outcomes = []
    ids = RolloutPlan.objects.filter(
        state__in=[State.RUNNING.value, State.PAUSED.value]
    ).values_list("pk", flat=True)
    for pk in list(ids):
        plan = RolloutPlan.objects.get(pk=pk)
        try:
            outcomes.append(run_check(plan, now=now, source=source))
        except Exception as exc:
            logger.exception("rollout %s check failed", pk)
            outcomes.append(CheckOutcome(pk, "error", "error", str(exc), plan.current_bps))
    return outcomes
