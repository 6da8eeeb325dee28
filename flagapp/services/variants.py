"""A flag's variants: replaced as a list, validated in every environment against its rules,
fallthrough and other flags' prerequisites."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from flagapp.documents import rules_as_dicts
from flagapp.exceptions import FlagValidationError
from flagapp.models import (
    Flag,
    FlagState,
    Variant,
)
from flagapp.policy import requires_approval

from ._base import (
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
from ._validation import normalize_variants, validate_flag_in_environment
from .flags import _coerce_value, _copy_stored, _send_changed
from .lifecycle import _enabled_in_protected

if TYPE_CHECKING:
    from flagapp.policy import Actor, Approval

__all__ = ["set_variants"]


def set_variants(
    flag: Flag,
    variants: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    actor: Actor,
    reason: str,
    change_request: Approval | None = None,
    expected_version: int | None = None,
) -> list[Variant]:
    """Replace a flag's variants (keys matched: changed values are updates, missing keys
    deletions). Validated in every environment against that environment's rules and
    fallthrough, and against other flags' prerequisites. The flag's version and every
    state's version move (what it serves changed). Approval as for the flag (high risk, or
    enabled in a protected environment)."""
    reason = clean_reason(reason)
    check_permission(actor, "flagapp.change_flag")
    items = normalize_variants(variants)
    for item in items:
        item["value"] = _coerce_value(flag.kind, item["value"])
    with transaction.atomic():
        locked = Flag.objects.select_for_update().get(pk=flag.pk)
        current = list(locked.variants.order_by("order", "key"))
        unchanged = [(v.key, v.value, v.description, v.order) for v in current] == [
            (i["key"], i["value"], i["description"], i["order"]) for i in items
        ]
        if check_version(locked, expected_version, unchanged=unchanged):
            return current
        result = _write_variants(locked, items, actor, reason, change_request)
    _copy_stored(locked, flag)
    return result


def _write_variants(
    flag: Flag,
    items: list[dict[str, Any]],
    actor: Actor,
    reason: str,
    change_request: Approval | None,
) -> list[Variant]:
    """set_variants' validation and write, ``flag`` being the locked, version-checked row."""
    new_keys = {i["key"] for i in items}
    pairs = [(i["key"], i["value"]) for i in items]
    states = list(
        FlagState.objects.filter(flag=flag).select_related("environment").prefetch_related("rules")
    )
    for state in states:
        validate_flag_in_environment(
            flag_key=flag.key,
            kind=flag.kind,
            variants=pairs,
            environment=state.environment,
            enabled=state.enabled,
            fallthrough=state.fallthrough,
            prerequisites=state.prerequisites,
            rules=rules_as_dicts(state),
            context=f"in {state.environment.key}",
        )
    for other in (
        FlagState.objects.exclude(prerequisites=[])
        .exclude(flag=flag)
        .select_related("flag", "environment")
    ):
        for p in other.prerequisites:
            if isinstance(p, Mapping) and p.get("flag") == flag.key:
                missing = [v for v in p.get("variants", []) if v not in new_keys]
                if missing:
                    raise FlagValidationError(
                        {
                            "variants": [
                                f"{other.flag.key}@{other.environment.key} requires variant(s) "
                                f"{', '.join(missing)} of this flag"
                            ]
                        }
                    )
    require_approval(
        requires_approval(flag) or _enabled_in_protected(flag),
        change_request,
        flag,
        None,
        describe_change(
            "set_variants",
            flag=flag,
            params={"variants": items, "expected_version": flag.version},
        ),
    )
    with transaction.atomic():
        # The flag's version moves without a flag history row: the variants' own rows say
        # what changed.
        bump(flag)
        Flag.objects.filter(pk=flag.pk).update(version=flag.version, updated_at=timezone.now())
        by_key = {v.key: v for v in Variant.objects.filter(flag=flag)}
        for key, variant in by_key.items():
            if key not in new_keys:
                delete(variant, actor, reason)
        result = []
        for item in items:
            existing = by_key.get(item["key"])
            if existing is None:
                existing = Variant(flag=flag, key=item["key"])
            elif (existing.value, existing.description, existing.order) == (
                item["value"],
                item["description"],
                item["order"],
            ):
                result.append(existing)
                continue
            existing.value = item["value"]
            existing.description = item["description"]
            existing.order = item["order"]
            save(existing, actor, reason)
            result.append(existing)
        for state in FlagState.objects.select_for_update().filter(flag=flag):
            state.version += 1
            save(state, actor, reason)
        publish_on_commit([s.environment_id for s in states], flags=[flag.key])
        _send_changed(
            flag,
            [s.environment.key for s in states],
            actor,
            reason,
            "set_variants",
            {"variants": [{"key": i["key"], "value": i["value"]} for i in items]},
        )
    return result
