"""The guards of starting a rollout plan, shared by the admin and the API
(``flagapp.rollouts.controller.start_rollout`` applies them).

The rollout state machine itself is :mod:`flagapp.rollouts.controller` (the only writer of
``RolloutPlan.state``; every step is a ``services.update_flag_state`` call). What lives here
is the policy a person or a client meets before it runs: a plan never silently *lowers* the
exposure a flag already has (a manual 10% must not drop to the plan's 1% first step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

__all__ = ["current_exposure_bps", "lowers_exposure", "start_notes"]


def current_exposure_bps(plan: Any) -> int | None:
    """What the plan's flag serves of its treatment now in its environment (its
    fallthrough, in basis points), or None when the flag is off there."""
    from flagapp.models import FlagState
    from flagapp.rollouts.schedule import treatment_bps

    state = FlagState.objects.filter(
        flag_id=plan.flag_id, environment_id=plan.environment_id
    ).first()
    if state is None or not state.enabled:
        return None
    return treatment_bps(state.fallthrough, plan.treatment_variant)


def lowers_exposure(plan: Any) -> str | None:
    """Why starting ``plan`` would silently take users away, or None.

    A plan starts at its first step; a flag already serving more of the treatment (a manual
    10% before the plan) would drop to that step (1%), and the users between lose the
    feature without anyone deciding it."""
    from flagapp.rollouts.schedule import format_bps

    if plan.state != "draft" or not plan.steps:
        return None
    now, first = current_exposure_bps(plan), int(plan.steps[0])
    if now is None or now <= first:
        return None
    return (
        f"{plan.flag.key} already serves {format_bps(now)} of {plan.treatment_variant} in "
        f"{plan.environment.key}; the plan's first step is {format_bps(first)}, so starting "
        f"would lower exposure. Make the first step at least {format_bps(now)} (the steps "
        "below it can go)."
    )


def start_notes(plan: Any) -> list[str]:
    """A preview of starting ``plan``: its first step against what is served now (or why
    it cannot start)."""
    from flagapp.rollouts.schedule import format_bps

    if plan.state != "draft" or not plan.steps:
        return []
    lowered = lowers_exposure(plan)
    if lowered:
        return [f"{plan}: {lowered}"]
    now = current_exposure_bps(plan)
    current = "off" if now is None else f"{format_bps(now)} of {plan.treatment_variant}"
    return [
        f"{plan}: first step serves {format_bps(int(plan.steps[0]))} of "
        f"{plan.treatment_variant} (now {current})."
    ]
