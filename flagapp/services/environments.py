"""Environment services: create (with a state for every flag), update, copy/promote."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction

from flagapp.exceptions import FlagValidationError
from flagapp.models import Environment, Flag, FlagState
from flagapp.policy import requires_approval

from ._base import (
    UNSET,
    bump,
    check_permission,
    check_version,
    clean_reason,
    describe_change,
    publish_on_commit,
    require_approval,
    save,
)

__all__ = ["copy_environment", "create_environment", "update_environment"]

_ENV_KEY = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62})$")


def create_environment(
    *,
    key: str,
    name: str,
    actor: Any,
    reason: str,
    protected: bool = False,
    order: int = 0,
) -> Environment:
    """Create an environment; every existing flag gets a disabled state in it."""
    from .flags import default_fallthrough

    reason = clean_reason(reason)
    check_permission(actor, "flagapp.add_environment")
    errors: dict[str, list[str]] = {}
    if not isinstance(key, str) or not _ENV_KEY.match(key):
        errors["key"] = ["1-63 lowercase letters, digits, '-' or '_' (e.g. production)"]
    elif Environment.objects.filter(key=key).exists():
        errors["key"] = [f"an environment {key!r} already exists"]
    if not isinstance(name, str) or not name.strip():
        errors["name"] = ["a name is required"]
    if not isinstance(protected, bool):
        errors["protected"] = ["expected true or false"]
    if isinstance(order, bool) or not isinstance(order, int):
        errors["order"] = ["expected an integer"]
    if errors:
        raise FlagValidationError(errors)
    try:
        with transaction.atomic():
            env = Environment(key=key, name=name.strip(), protected=protected, order=order)
            save(env, actor, reason)
            for flag in Flag.objects.prefetch_related("variants"):
                keys = [v.key for v in flag.variants.all()]
                save(
                    FlagState(
                        flag=flag,
                        environment=env,
                        enabled=False,
                        fallthrough=default_fallthrough(keys),
                    ),
                    actor,
                    reason,
                )
            publish_on_commit([env.pk])
    except IntegrityError:
        # A concurrent create took the key between the check and the insert.
        raise FlagValidationError({"key": [f"an environment {key!r} already exists"]}) from None

    return env


def update_environment(
    environment: Environment,
    *,
    actor: Any,
    reason: str,
    name: Any = UNSET,
    protected: Any = UNSET,
    order: Any = UNSET,
    key: Any = UNSET,
    change_request: Any = None,
    expected_version: int | None = None,
) -> Environment:
    """Rename, reorder or (un)protect. Removing protection needs approval (it would
    otherwise be a way around it). ``expected_version``: the environment version the
    caller edited (``check_version``)."""
    reason = clean_reason(reason)
    check_permission(actor, "flagapp.change_environment")
    if environment.protected:
        check_permission(actor, "flagapp.change_protected_environment")
    errors: dict[str, list[str]] = {}
    changes: dict[str, Any] = {}
    if key is not UNSET and key != environment.key:
        errors["key"] = ["an environment key cannot be changed"]
    if name is not UNSET:
        if not isinstance(name, str) or not name.strip():
            errors["name"] = ["a name is required"]
        else:
            changes["name"] = name.strip()
    if protected is not UNSET:
        if not isinstance(protected, bool):
            errors["protected"] = ["expected true or false"]
        changes["protected"] = protected
    if order is not UNSET:
        if isinstance(order, bool) or not isinstance(order, int):
            errors["order"] = ["expected an integer"]
        changes["order"] = order
    if errors:
        raise FlagValidationError(errors)
    if not changes:
        return environment
    with transaction.atomic():
        locked = Environment.objects.select_for_update().get(pk=environment.pk)
        changes = {k: v for k, v in changes.items() if getattr(locked, k) != v}
        if check_version(locked, expected_version, unchanged=not changes):
            return locked
        if changes.get("protected") is False:
            require_approval(
                requires_approval(None, locked),
                change_request,
                None,
                locked,
                describe_change(
                    "update_environment",
                    environment=locked,
                    params={**changes, "expected_version": locked.version},
                ),
            )
        for k, v in changes.items():
            setattr(locked, k, v)
        bump(locked)
        save(locked, actor, reason)
    for k, v in changes.items():
        setattr(environment, k, v)
    environment.version = locked.version
    return locked


def copy_environment(
    source: Environment,
    target: Environment,
    *,
    actor: Any,
    reason: str,
    flags: Iterable[str] | None = None,
    include_enabled: bool = True,
    change_request: Any = None,
) -> list[str]:
    """Copy (promote) the state of every non-archived flag — or of the keys in ``flags`` —
    from ``source`` to ``target``: fallthrough, prerequisites, rules and (unless
    ``include_enabled`` is false) enabled. All or nothing (one transaction); returns the
    keys whose state changed. Governance applies per flag as for any state change."""
    from .states import _rules_of, update_flag_state

    reason = clean_reason(reason)
    if source.pk == target.pk:
        raise FlagValidationError({"target": ["source and target are the same environment"]})
    qs = FlagState.objects.filter(environment=source, flag__archived=False).select_related("flag")
    if flags is not None:
        wanted = set(flags)
        qs = qs.filter(flag__key__in=wanted)
        missing = wanted - set(qs.values_list("flag__key", flat=True))
        if missing:
            raise FlagValidationError({"flags": [f"unknown flags: {', '.join(sorted(missing))}"]})
    changed: list[str] = []
    with transaction.atomic():
        for state in qs.order_by("flag__key"):
            before = FlagState.objects.filter(flag=state.flag, environment=target).first()
            kwargs: dict[str, Any] = {
                "fallthrough": state.fallthrough,
                "prerequisites": state.prerequisites,
                "rules": _rules_of(state),
            }
            if include_enabled:
                kwargs["enabled"] = state.enabled
            after = update_flag_state(
                state.flag,
                target,
                actor=actor,
                reason=reason,
                change_request=change_request,
                **kwargs,
            )
            if before is None or after.version != before.version:
                changed.append(state.flag.key)
    return changed
