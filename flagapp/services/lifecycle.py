"""A flag's lifecycle: archive (pausing its rollouts and withdrawing its open change
requests), unarchive, delete (a tombstone keeps the key from being reused)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from flagapp.documents import rules_as_dicts
from flagapp.exceptions import FlagValidationError
from flagapp.governance import closing
from flagapp.governance.operations import describe_operation
from flagapp.models import (
    Environment,
    Flag,
    FlagKeyTombstone,
    FlagState,
    Variant,
)
from flagapp.policy import requires_approval
from flagapp.rollouts.transitions import pause

from ._base import (
    bump,
    check_permission,
    check_version,
    clean_reason,
    delete,
    describe_change,
    history_user,
    publish_on_commit,
    require_approval,
    save,
)
from ._validation import dependents_of, validate_flag_in_environment
from .flags import _copy_stored, _send_changed

if TYPE_CHECKING:
    from flagapp.policy import Actor, Approval

__all__ = ["archive_flag", "archive_notes", "delete_flag", "unarchive_flag"]


def _enabled_in_protected(flag: Flag) -> bool:
    return FlagState.objects.filter(flag=flag, enabled=True, environment__protected=True).exists()


def _set_archived(
    flag: Flag,
    archived: bool,
    actor: Actor,
    reason: str,
    change_request: Approval | None,
    op: str,
    expected_version: int | None,
) -> Flag:
    reason = clean_reason(reason)
    check_permission(actor, "flagapp.change_flag")
    with transaction.atomic():
        locked = Flag.objects.select_for_update().get(pk=flag.pk)
        if check_version(locked, expected_version, unchanged=locked.archived == archived):
            _copy_stored(locked, flag)
            return locked
        if archived:
            dependents = dependents_of(locked)
            if dependents:
                raise FlagValidationError(
                    {"archived": [f"other flags require this flag: {', '.join(dependents)}"]}
                )
        else:
            # Its prerequisites may have gone while it was archived: it must compile again.
            pairs = list(locked.variants.order_by("order", "key").values_list("key", "value"))
            for state in FlagState.objects.filter(flag=locked).select_related("environment"):
                validate_flag_in_environment(
                    flag_key=locked.key,
                    kind=locked.kind,
                    variants=pairs,
                    environment=state.environment,
                    enabled=state.enabled,
                    fallthrough=state.fallthrough,
                    prerequisites=state.prerequisites,
                    rules=rules_as_dicts(state),
                    context=f"in {state.environment.key}",
                )
        require_approval(
            requires_approval(locked) or _enabled_in_protected(locked),
            change_request,
            locked,
            None,
            describe_change(op, flag=locked, params={"expected_version": locked.version}),
        )
        locked.archived = archived
        bump(locked)
        save(locked, actor, reason)
        if archived:
            _settle_archived(locked, actor, reason, change_request)
        publish_on_commit(
            list(Environment.objects.values_list("pk", flat=True)), flags=[locked.key]
        )
        _send_changed(locked, [], actor, reason, op)
    _copy_stored(locked, flag)
    return locked


def _running_rollouts(flag: Flag) -> Any:
    from flagapp.models import RolloutPlan

    return RolloutPlan.objects.filter(flag=flag, state="running").select_related("environment")


def archive_notes(flag: Flag) -> list[str]:
    """What archiving ``flag`` will also do, in words (the admin shows these before asking
    for the reason): running rollouts are paused, open change requests withdrawn."""
    notes = [
        f"{flag.key}: rollout #{plan.pk} in {plan.environment.key} is {plan.state}; "
        "archiving pauses it."
        for plan in _running_rollouts(flag)
    ]
    for cr in closing.open_requests(flag):
        what = describe_operation(cr.kind, cr.payload)
        notes.append(
            f"{flag.key}: change request #{cr.pk} ({what}) is {cr.status}; archiving withdraws it."
        )
    return notes


def _settle_archived(
    flag: Flag, actor: Actor, reason: str, change_request: Approval | None
) -> None:
    """An archived flag leaves every snapshot: a rollout still stepping it or a request still
    waiting to change it would act on a flag nobody serves. Pause the one, withdraw the
    other (not the approved request being applied, if that is what archives it)."""
    why = f"flag archived: {reason}"
    for plan in _running_rollouts(flag):
        pause(plan, actor=actor, reason=why)
    applying = getattr(change_request, "pk", None)
    for cr in closing.open_requests(flag).exclude(pk=applying):
        closing.withdraw(cr, actor=actor, reason=why, flag_archived=True)


def archive_flag(
    flag: Flag,
    *,
    actor: Actor,
    reason: str,
    change_request: Approval | None = None,
    expected_version: int | None = None,
) -> Flag:
    """Archive: the flag leaves every snapshot (callers get FLAG_NOT_FOUND, i.e. their
    default). Refused while other flags name it as a prerequisite. Running rollouts of the
    flag are paused and its open change requests withdrawn, in the same transaction
    (:func:`archive_notes` says so beforehand)."""
    return _set_archived(
        flag, True, actor, reason, change_request, "archive_flag", expected_version
    )


def unarchive_flag(
    flag: Flag,
    *,
    actor: Actor,
    reason: str,
    change_request: Approval | None = None,
    expected_version: int | None = None,
) -> Flag:
    return _set_archived(
        flag, False, actor, reason, change_request, "unarchive_flag", expected_version
    )


def delete_flag(
    flag: Flag,
    *,
    actor: Actor,
    reason: str,
    change_request: Approval | None = None,
    expected_version: int | None = None,
) -> FlagKeyTombstone:
    """Delete a flag, its variants, states and rules (each deletion in the history with the
    reason) and leave a tombstone so the key is never reused."""
    reason = clean_reason(reason)
    check_permission(actor, "flagapp.delete_flag")
    with transaction.atomic():
        locked = Flag.objects.select_for_update().get(pk=flag.pk)
        check_version(locked, expected_version, unchanged=False)
        dependents = dependents_of(locked)
        if dependents:
            raise FlagValidationError(
                {"__all__": [f"other flags require this flag: {', '.join(dependents)}"]}
            )
        require_approval(
            requires_approval(locked) or _enabled_in_protected(locked),
            change_request,
            locked,
            None,
            describe_change(
                "delete_flag", flag=locked, params={"expected_version": locked.version}
            ),
        )
        for state in FlagState.objects.filter(flag=locked).prefetch_related("rules"):
            for rule in state.rules.all():
                delete(rule, actor, reason)
            delete(state, actor, reason)
        for variant in Variant.objects.filter(flag=locked):
            delete(variant, actor, reason)
        key = locked.key
        delete(locked, actor, reason)
        tomb = FlagKeyTombstone(
            key=key,
            deleted_by=history_user(actor),
            reason=reason,
        )
        save(tomb, actor, reason)
        publish_on_commit(list(Environment.objects.values_list("pk", flat=True)), flags=[key])
    return tomb
