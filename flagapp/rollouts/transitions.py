"""Plan transitions that need no flag write: the shared bookkeeping of every transition
(the row lock, the transition record and its notification, the reason rule) and ``pause``.

Why apart from :mod:`flagapp.rollouts.controller`: the controller steps flags through
``flagapp.services`` (the write path), and the services must be able to pause a flag's
rollouts when it is archived. Were that in the controller, the services and the controller
would import each other; this module imports no service, so ``services.lifecycle`` uses it
directly (docs/internals.md, "Import cycles"). ``controller`` re-exports ``pause``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from flagapp.exceptions import FlagValidationError
from flagapp.models import RolloutPlan, RolloutTransition
from flagapp.notifications.outbox import announce
from flagapp.signals import rollout_transition

from .states import Action, State, next_state

__all__ = ["pause"]


def _now(now: datetime | None) -> datetime:
    return now if now is not None else timezone.now()


def _record(
    plan: RolloutPlan,
    action: Action,
    *,
    at: datetime,
    reason: str,
    actor: Any,
    automatic: bool,
    from_state: str,
    from_bps: int,
    details: Mapping[str, Any] | None = None,
) -> None:
    transition = RolloutTransition.objects.create(
        plan=plan,
        at=at,
        action=action.value,
        from_state=from_state,
        to_state=plan.state,
        from_bps=from_bps,
        to_bps=plan.current_bps,
        reason=reason,
        automatic=automatic,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        details=dict(details or {}),
    )
    # Notifications (webhooks, Slack, the owners' email on a rollback) after COMMIT, through
    # the one dispatcher (flagapp.notifications): a transition that rolls back says nothing.
    announce(rollout_transition, type(plan), plan=plan, transition=transition)


def _clean_reason(reason: str) -> str:
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise FlagValidationError({"reason": ["A reason is required."]})
    return text


def _lock(plan: RolloutPlan) -> RolloutPlan:
    return (
        RolloutPlan.objects.select_for_update()
        .select_related("flag", "environment", "flag__owner")
        .get(pk=plan.pk)
    )


def pause(
    plan: RolloutPlan,
    *,
    actor: Any,
    reason: str,
    now: datetime | None = None,
    automatic: bool = False,
) -> RolloutPlan:
    """running -> paused: the percentage stays where it is; guardrails are still checked
    (a breach while paused still rolls back), but no step is taken."""
    reason = _clean_reason(reason)
    at = _now(now)
    with transaction.atomic():
        plan = _lock(plan)
        plan.state = next_state(plan.state, Action.PAUSE).value
        plan.save()
        _record(
            plan,
            Action.PAUSE,
            at=at,
            reason=reason,
            actor=actor,
            automatic=automatic,
            from_state=State.RUNNING.value,
            from_bps=plan.current_bps,
        )
    return plan
