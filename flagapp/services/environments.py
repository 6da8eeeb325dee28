"""Environment services: create (with a state for every flag), update, copy/promote."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import TextField
from django.db.models.functions import Cast

from flagapp.exceptions import ApprovalRequired, FlagValidationError
from flagapp.models import Environment, Flag, FlagState, TargetingRule
from flagapp.models.flags import Risk
from flagapp.policy import kill_switch_bypasses_approval, requires_approval

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

if TYPE_CHECKING:
    from flagapp.policy import Actor, Approval

__all__ = [
    "Promotion",
    "PromotionStep",
    "copy_environment",
    "create_environment",
    "promote_environment",
    "promotion_plan",
    "update_environment",
]

_ENV_KEY = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62})$")


def create_environment(
    *,
    key: str,
    name: str,
    actor: Actor,
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
    actor: Actor,
    reason: str,
    name: Any = UNSET,
    protected: Any = UNSET,
    order: Any = UNSET,
    key: Any = UNSET,
    change_request: Approval | None = None,
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


class _RawState(NamedTuple):
    """A flag state as stored: its JSON columns as the database's text, decoded only when
    asked (:func:`_decode`). Equal texts are equal values, so comparing two states decodes
    only the columns whose texts differ."""

    enabled: bool
    fallthrough: str | None
    prerequisites: str | None
    #: (rule id, description, conditions text, serve text), in order
    rules: tuple[tuple[str, str, str | None, str | None], ...]


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _decode(raw: _RawState) -> dict[str, Any]:
    """What ``documents.state_dict`` has for the state (the shape promote copies)."""
    return {
        "enabled": raw.enabled,
        "fallthrough": _loads(raw.fallthrough),
        "prerequisites": list(_loads(raw.prerequisites) or []),
        "rules": [
            {"id": rule_id, "description": description, "when": _loads(when),
             "serve": _loads(serve)}
            for rule_id, description, when, serve in raw.rules
        ],
    }  # fmt: skip


def _same(a: str | None, b: str | None) -> bool:
    return a == b or _loads(a) == _loads(b)


def _differences(before: _RawState, after: _RawState) -> set[str]:
    """The fields of ``after`` that differ from ``before`` (as decoded values compare)."""
    out = set()
    if before.enabled != after.enabled:
        out.add("enabled")
    if not _same(before.fallthrough, after.fallthrough):
        out.add("fallthrough")
    if before.prerequisites != after.prerequisites and list(
        _loads(before.prerequisites) or []
    ) != list(_loads(after.prerequisites) or []):
        out.add("prerequisites")
    if len(before.rules) != len(after.rules) or any(
        b[:2] != a[:2] or not _same(b[2], a[2]) or not _same(b[3], a[3])
        for b, a in zip(before.rules, after.rules, strict=True)
    ):
        out.add("rules")
    return out


@dataclass(frozen=True)
class PromotionStep:
    """What promoting one flag does to the target environment: its state before and after
    (``{"enabled", "fallthrough", "prerequisites", "rules"}``; ``before`` None when the flag
    has no state there yet) and whether the change needs an approved change request.

    ``before`` and ``after`` are decoded from the stored JSON when first read: a preview of
    10,000 changed flags that shows 100 decodes 100 (``changed`` is known without them)."""

    flag: str
    flag_id: int
    raw_before: _RawState | None = field(repr=False)
    raw_after: _RawState = field(repr=False)
    needs_approval: bool
    #: the versions of the source and target states the step was computed from (0: none)
    versions: tuple[int, int] = (0, 0)
    changed: bool = True

    @cached_property
    def before(self) -> dict[str, Any] | None:
        return None if self.raw_before is None else _decode(self.raw_before)

    @cached_property
    def after(self) -> dict[str, Any]:
        return _decode(self.raw_after)


@dataclass
class Promotion:
    """The outcome of :func:`promote_environment`: flags applied, flags handed to
    ``on_approval_required`` (its return values in ``proposed``), flags already equal."""

    applied: list[str] = field(default_factory=list)
    proposed: list[tuple[str, Any]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _states(
    environment: Environment, versions: dict[int, int], flag_ids: set[int] | None = None
) -> dict[int, _RawState]:
    """flag id -> its state in ``environment`` as stored (and its version in ``versions``),
    read with two ``values_list`` queries, JSON columns as text (no model instances, no
    decoding: the preview of 10,000 flags reads 20,000 states and their rules)."""
    states = FlagState.objects.filter(environment=environment)
    if flag_ids is not None:
        states = states.filter(flag_id__in=flag_ids)
    rows = states.annotate(
        fallthrough_text=Cast("fallthrough", TextField()),
        prerequisites_text=Cast("prerequisites", TextField()),
    ).values_list("pk", "flag_id", "enabled", "fallthrough_text", "prerequisites_text", "version")
    found: dict[int, tuple[int, bool, str | None, str | None]] = {}
    for pk, flag_id, enabled, fallthrough, prerequisites, version in rows:
        versions[flag_id] = version
        found[pk] = (flag_id, enabled, fallthrough, prerequisites)
    rules = TargetingRule.objects.filter(state__environment=environment)
    if flag_ids is not None:
        rules = rules.filter(state__flag_id__in=flag_ids)
    by_state: dict[int, list[tuple[str, str, str | None, str | None]]] = {}
    rule_rows = rules.annotate(
        conditions_text=Cast("conditions", TextField()), serve_text=Cast("serve", TextField())
    ).values_list("state_id", "order", "pk", "rule_id", "description", "conditions_text",
                  "serve_text")  # fmt: skip
    for state_id, _order, _pk, rule_id, description, conditions, serve in sorted(
        rule_rows, key=lambda r: (r[0], r[1], r[2])
    ):
        by_state.setdefault(state_id, []).append((rule_id, description, conditions, serve))
    return {
        flag_id: _RawState(enabled, fallthrough, prerequisites, tuple(by_state.get(pk, ())))
        for pk, (flag_id, enabled, fallthrough, prerequisites) in found.items()
    }


def promotion_plan(
    source: Environment,
    target: Environment,
    *,
    flags: Iterable[str] | None = None,
    include_enabled: bool = True,
) -> list[PromotionStep]:
    """What :func:`promote_environment` would do, flag by flag, without writing: five
    queries whatever the number of flags (the admin's preview). Equal to comparing
    ``documents.state_dict`` of the two states; the stored JSON is decoded only where two
    texts differ, and a step's ``before``/``after`` only when read."""
    if source.pk == target.pk:
        raise FlagValidationError({"target": ["source and target are the same environment"]})
    candidates = Flag.objects.filter(archived=False)
    if flags is not None:
        wanted = set(flags)
        candidates = candidates.filter(key__in=wanted)
    flag_rows = list(candidates.values_list("pk", "key", "risk").order_by("key"))
    if flags is not None:
        missing = wanted - {key for _, key, _ in flag_rows}
        if missing:
            raise FlagValidationError({"flags": [f"unknown flags: {', '.join(sorted(missing))}"]})
    ids = {pk for pk, _, _ in flag_rows} if flags is not None else None
    source_versions: dict[int, int] = {}
    target_versions: dict[int, int] = {}
    sources = _states(source, source_versions, ids)
    current = _states(target, target_versions, ids)
    bypass = kill_switch_bypasses_approval()
    # the policy, asked once per risk level (a Flag per row would cost more than the rest)
    guarded = {r: requires_approval(Flag(risk=r), target) for r in Risk.values}
    steps = []
    for flag_id, key, risk in flag_rows:
        after = sources.get(flag_id)
        if after is None:
            continue
        before = current.get(flag_id)
        if not include_enabled:
            after = after._replace(enabled=before.enabled if before is not None else False)
        differences = {"enabled"} if before is None else _differences(before, after)
        only_kill = (
            before is not None and before.enabled and not after.enabled
            and differences == {"enabled"}
        )  # fmt: skip
        steps.append(
            PromotionStep(
                flag=key,
                flag_id=flag_id,
                raw_before=before,
                raw_after=after,
                needs_approval=guarded.get(risk, True) and not (only_kill and bypass),
                versions=(source_versions[flag_id], target_versions.get(flag_id, 0)),
                changed=before is None or bool(differences),
            )
        )
    return steps


def promote_environment(
    source: Environment,
    target: Environment,
    *,
    actor: Actor,
    reason: str,
    flags: Iterable[str] | None = None,
    include_enabled: bool = True,
    change_request: Approval | None = None,
    on_approval_required: Callable[[ApprovalRequired], Any] | None = None,
) -> Promotion:
    """Copy (promote) the state of every non-archived flag — or of the keys in ``flags`` —
    from ``source`` to ``target``: fallthrough, prerequisites, rules and (unless
    ``include_enabled`` is false) enabled, each through :func:`update_flag_state` (so
    permissions, validation, versions, history and publishing apply per flag). One
    transaction: a refused flag (validation, permission) writes nothing at all.

    A flag whose change needs approval raises :class:`ApprovalRequired` — unless
    ``on_approval_required`` is given: it is called with the exception (the admin proposes
    a change request there) and the other flags carry on."""
    from .states import update_flag_state

    reason = clean_reason(reason)
    check_permission(actor, "flagapp.change_flagstate")
    result = Promotion()
    with transaction.atomic():
        for step in promotion_plan(source, target, flags=flags, include_enabled=include_enabled):
            if not step.changed:
                result.unchanged.append(step.flag)
                continue
            flag = Flag.objects.get(pk=step.flag_id)
            try:
                with transaction.atomic():
                    update_flag_state(
                        flag,
                        target,
                        actor=actor,
                        reason=reason,
                        change_request=change_request,
                        enabled=step.after["enabled"],
                        fallthrough=step.after["fallthrough"],
                        prerequisites=step.after["prerequisites"],
                        rules=step.after["rules"],
                    )
            except ApprovalRequired as exc:
                if on_approval_required is None:
                    raise
                result.proposed.append((step.flag, on_approval_required(exc)))
            except FlagValidationError as exc:
                # Name the flag: the state's own field names alone do not say which one.
                raise FlagValidationError(
                    {
                        "flags": [
                            f"{step.flag}: {f}: {m}" if f != "__all__" else f"{step.flag}: {m}"
                            for f, msgs in exc.message_dict.items()
                            for m in msgs
                        ]
                    }
                ) from None
            else:
                result.applied.append(step.flag)
    return result


def copy_environment(
    source: Environment,
    target: Environment,
    *,
    actor: Actor,
    reason: str,
    flags: Iterable[str] | None = None,
    include_enabled: bool = True,
    change_request: Approval | None = None,
) -> list[str]:
    """:func:`promote_environment` without proposals: returns the keys whose state changed
    (all or nothing; a flag needing approval raises :class:`ApprovalRequired`)."""
    return promote_environment(
        source,
        target,
        actor=actor,
        reason=reason,
        flags=flags,
        include_enabled=include_enabled,
        change_request=change_request,
    ).applied
