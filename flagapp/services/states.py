"""Per-environment flag state: enabled (kill switch), fallthrough, prerequisites, rules.

Optimistic concurrency: the caller names the ``expected_version`` it edited; the state row
is locked (``select_for_update``) and compared by :func:`._base.check_version`, the rule
every versioned resource shares: a stale edit is refused with ``VersionConflict`` and
nothing is overwritten — unless it asks for exactly what is stored (a retry of a write that
committed): that succeeds idempotently with the current version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from flagapp.documents import rules_as_dicts
from flagapp.exceptions import FlagValidationError
from flagapp.models import Environment, Flag, FlagState, TargetingRule
from flagapp.policy import kill_switch_bypasses_approval, requires_approval

from ._base import (
    UNSET,
    bump,
    check_permission,
    check_version,
    clean_reason,
    delete,
    describe_change,
    publish_on_commit,
    require_approval,
    save,
)
from ._validation import normalize_rules, validate_flag_in_environment
from .flags import _send_changed

if TYPE_CHECKING:
    from flagapp.policy import Actor, Approval

__all__ = ["set_flag_enabled", "update_flag_state"]


def _rules_of(state: FlagState) -> list[dict[str, Any]]:
    return rules_as_dicts(state)


def update_flag_state(
    flag: Flag,
    environment: Environment,
    *,
    actor: Actor,
    reason: str,
    expected_version: int | None = None,
    enabled: Any = UNSET,
    fallthrough: Any = UNSET,
    prerequisites: Any = UNSET,
    rules: Any = UNSET,
    change_request: Approval | None = None,
) -> FlagState:
    """Change a flag's state in one environment; unspecified parts stay as they are.

    ``rules`` replaces the whole ordered list (``[{"id"?, "description"?, "when", "serve"}]``;
    rules keep their identity by id, missing ids are generated). ``expected_version`` None
    skips the version check (commands that own the whole configuration); the admin and the
    API always pass it. A change identical to the stored state writes nothing.
    Approval is needed for high-risk flags and protected environments, except for turning
    the flag off (the kill switch, see ``FLAGAPP["KILL_SWITCH_BYPASSES_APPROVAL"]``).
    """
    reason = clean_reason(reason)
    check_permission(actor, "flagapp.change_flagstate")
    if environment.protected:
        # Only some users may change protected (production) environments at all.
        check_permission(actor, "flagapp.change_protected_environment")
    if flag.archived:
        raise FlagValidationError({"__all__": ["archived flags cannot be changed; unarchive"]})
    if enabled is not UNSET and not isinstance(enabled, bool):
        raise FlagValidationError({"enabled": ["expected true or false"]})
    new_rules = normalize_rules(rules) if rules is not UNSET else None

    with transaction.atomic():
        state = (
            # of=("self",): the default ordering joins Flag and Environment, and a bare FOR
            # UPDATE would lock their rows too (every writer of the environment, and its
            # publisher, waiting on one row). Only the state row is ours to lock.
            FlagState.objects.select_for_update(of=("self",))
            .filter(flag=flag, environment=environment)
            .first()
        )
        if state is None:
            from .flags import default_fallthrough

            state = FlagState(
                flag=flag,
                environment=environment,
                enabled=False,
                fallthrough=default_fallthrough(list(flag.variants.values_list("key", flat=True))),
                version=0,
            )
        old_rules = _rules_of(state) if state.pk else []
        target = {
            "enabled": state.enabled if enabled is UNSET else enabled,
            "fallthrough": state.fallthrough if fallthrough is UNSET else fallthrough,
            "prerequisites": state.prerequisites if prerequisites is UNSET else prerequisites,
            "rules": old_rules if new_rules is None else new_rules,
        }
        current = {
            "enabled": state.enabled,
            "fallthrough": state.fallthrough,
            "prerequisites": state.prerequisites,
            "rules": old_rules,
        }
        # Identical (the retry of a committed write): nothing to do, even when stale.
        if check_version(state, expected_version, unchanged=bool(state.pk) and target == current):
            return state

        validate_flag_in_environment(
            flag_key=flag.key,
            kind=flag.kind,
            variants=list(flag.variants.order_by("order", "key").values_list("key", "value")),
            environment=environment,
            enabled=target["enabled"],
            fallthrough=target["fallthrough"],
            prerequisites=target["prerequisites"],
            rules=target["rules"],
        )

        only_kill = (
            state.enabled
            and target["enabled"] is False
            and {k for k in target if target[k] != current[k]} == {"enabled"}
        )
        params = {k: v for k, v in target.items() if v != current[k]}
        require_approval(
            requires_approval(flag, environment)
            and not (only_kill and kill_switch_bypasses_approval()),
            change_request,
            flag,
            environment,
            describe_change(
                "update_flag_state",
                flag=flag,
                environment=environment,
                params={**params, "expected_version": state.version},
            ),
        )

        state.enabled = target["enabled"]
        state.fallthrough = target["fallthrough"]
        state.prerequisites = list(target["prerequisites"] or [])
        bump(state)
        save(state, actor, reason)
        if new_rules is not None and new_rules != old_rules:
            _replace_rules(state, new_rules, actor, reason)
        publish_on_commit([environment.pk], flags=[flag.key])
        _send_changed(flag, [environment.key], actor, reason, "update_flag_state", params)
    return state


def _replace_rules(
    state: FlagState, rules: list[dict[str, Any]], actor: Actor, reason: str
) -> None:
    existing = {r.rule_id: r for r in TargetingRule.objects.filter(state=state)}
    wanted = {r["id"] for r in rules}
    for rule_id, row in existing.items():
        if rule_id not in wanted:
            delete(row, actor, reason)
    for order, rule in enumerate(rules):
        row = existing.get(rule["id"]) or TargetingRule(state=state, rule_id=rule["id"])
        if row.pk is not None and (row.order, row.description, row.conditions, row.serve) == (
            order,
            rule["description"],
            rule["when"],
            rule["serve"],
        ):
            continue
        row.order = order
        row.description = rule["description"]
        row.conditions = rule["when"]
        row.serve = rule["serve"]
        save(row, actor, reason)


def set_flag_enabled(
    flag: Flag,
    environment: Environment,
    enabled: bool,
    *,
    actor: Actor,
    reason: str,
    expected_version: int | None = None,
    change_request: Approval | None = None,
) -> FlagState:
    """The kill switch (``enabled=False``: every caller gets its own default) and its
    reverse. Turning off needs no approval by default; turning on does where the policy
    asks for it."""
    return update_flag_state(
        flag,
        environment,
        actor=actor,
        reason=reason,
        expected_version=expected_version,
        enabled=enabled,
        change_request=change_request,
    )
