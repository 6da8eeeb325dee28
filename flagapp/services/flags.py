"""Flag services: create, update, archive, delete (tombstone), variants."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from flagapp.conf import settings
from flagapp.documents import envelope, flag_entry, rules_as_dicts
from flagapp.exceptions import FlagValidationError, KeyReuseError
from flagapp.models import (
    Environment,
    Flag,
    FlagKeyTombstone,
    FlagKind,
    FlagState,
    FlagType,
    Risk,
    Variant,
)
from flagapp.policy import requires_approval
from flagapp.signals import flag_changed

from ._base import (
    UNSET,
    _Unset,
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
from ._validation import dependents_of, normalize_variants, validate_flag_in_environment

__all__ = [
    "archive_flag",
    "archive_notes",
    "create_flag",
    "default_fallthrough",
    "delete_flag",
    "save_flag",
    "set_variants",
    "unarchive_flag",
    "update_flag",
]

_TAG_RE = re.compile(r"^[\w.:/-]{1,50}$")


def _send_changed(
    flag: Flag,
    env_keys: Sequence[str],
    actor: Any,
    reason: str,
    op: str,
    changes: Mapping[str, Any] | None = None,
) -> None:
    """``flag_changed``: stored with the change (the notification outbox), delivered after
    COMMIT (webhooks, Slack). ``changes`` is what
    the write set, for the receivers' payload; the dispatcher makes it JSON."""
    from flagapp.notifications.outbox import announce

    announce(  # stored with the change (outbox), delivered after COMMIT
        flag_changed,
        Flag,
        flag=flag,
        environment_keys=list(env_keys),
        actor=actor,
        reason=reason,
        operation=op,
        changes=dict(changes or {}),
    )


def _resolve_owner(owner: Any, errors: dict[str, list[str]]) -> Group | None:
    if isinstance(owner, Group):
        return owner
    if isinstance(owner, str) and owner:
        group = Group.objects.filter(name=owner).first()
        if group is None:
            errors.setdefault("owner", []).append(f"no group named {owner!r}")
        return group
    if isinstance(owner, int) and not isinstance(owner, bool):
        group = Group.objects.filter(pk=owner).first()
        if group is None:
            errors.setdefault("owner", []).append(f"no group with id {owner}")
        return group
    errors.setdefault("owner", []).append("every flag needs an owner group")
    return None


def _parse_date(value: Any, errors: dict[str, list[str]]) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    errors.setdefault("expires_on", []).append("expected a date (YYYY-MM-DD)")
    return None


def _check_expiry(
    flag_type: str, expires_on: dt.date | None, changed: bool, errors: dict[str, list[str]]
) -> None:
    if flag_type in settings.EXPIRY_REQUIRED_TYPES and expires_on is None:
        errors.setdefault("expires_on", []).append(f"{flag_type} flags need an expiry date")
        return
    if expires_on is None or not changed:
        return
    today = timezone.localdate()
    if expires_on < today:
        errors.setdefault("expires_on", []).append("the expiry date is in the past")
    max_days = settings.RELEASE_EXPIRY_MAX_DAYS
    if flag_type == FlagType.RELEASE and expires_on > today + dt.timedelta(days=max_days):
        errors.setdefault("expires_on", []).append(f"release flags expire within {max_days} days")


def _check_tags(tags: Any, errors: dict[str, list[str]]) -> list[str]:
    if tags is None:
        return []
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        errors.setdefault("tags", []).append("expected a list of strings")
        return []
    out: list[str] = []
    for t in tags:
        t = t.strip()
        if not _TAG_RE.match(t):
            errors.setdefault("tags", []).append(
                f"{t!r}: tags are 1-50 letters, digits or . _ : / -"
            )
        elif t not in out:
            out.append(t)
    return out


def _check_choice(value: Any, choices: Any, field: str, errors: dict[str, list[str]]) -> None:
    if value not in choices.values:
        errors.setdefault(field, []).append(f"{value!r} is not one of {', '.join(choices.values)}")


def _check_name(name: Any, errors: dict[str, list[str]]) -> str:
    if not isinstance(name, str) or not name.strip():
        errors.setdefault("name", []).append("a name is required")
        return ""
    if len(name.strip()) > 200:
        errors.setdefault("name", []).append("at most 200 characters")
    return name.strip()


def check_new_key(key: Any) -> None:
    """Pattern, uniqueness and never-reused (tombstone) checks of a new flag key."""
    pattern = settings.FLAG_KEY_PATTERN
    if not isinstance(key, str) or not re.fullmatch(pattern, key) or len(key) > 200:
        raise FlagValidationError(
            {
                "key": [
                    f"{key!r} does not match the flag key pattern {pattern} "
                    "(team.domain.purpose style, e.g. checkout.new-flow)"
                ]
            }
        )
    tomb = FlagKeyTombstone.objects.filter(key=key).first()
    if tomb is not None:
        raise KeyReuseError(key, tomb.deleted_at)
    if Flag.objects.filter(key=key).exists():
        raise FlagValidationError({"key": [f"a flag with the key {key!r} already exists"]})


def _coerce_value(kind: str, value: Any) -> Any:
    # Float flags store floats, so the stored value has the flag's type on every surface.
    if kind == FlagKind.FLOAT and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def default_fallthrough(variant_keys: Sequence[str]) -> dict[str, Any] | None:
    """A new state serves the ``off`` variant when there is one (enabling a new boolean flag
    turns targeting on without changing what anyone gets), else nothing (the caller's
    default)."""
    return {"variant": "off"} if "off" in variant_keys else None


def create_flag(
    *,
    key: str,
    name: str,
    owner: Group | str | int,
    actor: Any,
    reason: str,
    kind: str = FlagKind.BOOLEAN,
    flag_type: str = FlagType.RELEASE,
    description: str = "",
    risk: str = Risk.LOW,
    expires_on: dt.date | str | None = None,
    tags: Sequence[str] | None = None,
    variants: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> Flag:
    """Create a flag with its variants and a disabled state in every environment.

    Boolean flags get ``on``/``off`` variants unless ``variants`` is given; other kinds
    need explicit variants. Creating changes nothing anyone is served (the flag is off
    everywhere), so it needs no approval.
    """
    reason = clean_reason(reason)
    check_permission(actor, "flagapp.add_flag")
    check_new_key(key)
    errors: dict[str, list[str]] = {}
    name = _check_name(name, errors)
    _check_choice(kind, FlagKind, "kind", errors)
    _check_choice(flag_type, FlagType, "flag_type", errors)
    _check_choice(risk, Risk, "risk", errors)
    group = _resolve_owner(owner, errors)
    date = _parse_date(expires_on, errors)
    if "expires_on" not in errors:
        _check_expiry(flag_type, date, True, errors)
    clean_tags = _check_tags(tags, errors)
    if not isinstance(description, str):
        errors.setdefault("description", []).append("expected text")
    if variants is None:
        if kind == FlagKind.BOOLEAN:
            variants = {"on": True, "off": False}
        else:
            errors.setdefault("variants", []).append(f"a {kind} flag needs variants")
    variant_items: list[dict[str, Any]] = []
    if variants is not None:
        try:
            variant_items = normalize_variants(variants)
        except FlagValidationError as exc:
            for f, msgs in exc.message_dict.items():
                errors.setdefault(f, []).extend(msgs)
    if errors:
        raise FlagValidationError(errors)
    for item in variant_items:
        item["value"] = _coerce_value(kind, item["value"])

    environments = list(Environment.objects.all())
    keys = [v["key"] for v in variant_items]
    fallthrough = default_fallthrough(keys)
    # The engine validates the variants (values of the flag's kind) before anything is written.
    if environments:
        validate_flag_in_environment(
            flag_key=key,
            kind=kind,
            variants=[(v["key"], v["value"]) for v in variant_items],
            environment=environments[0],
            enabled=False,
            fallthrough=fallthrough,
            prerequisites=[],
            rules=[],
        )
    else:
        from ._base import parse_or_raise

        parse_or_raise(
            envelope(
                environment="-",
                flags={
                    key: flag_entry(
                        kind=kind,
                        enabled=False,
                        variants=[(v["key"], v["value"]) for v in variant_items],
                        prerequisites=[],
                        rules=[],
                        fallthrough=fallthrough,
                        metadata={},
                    )
                },
            ),
            flag_key=key,
        )

    try:
        with transaction.atomic():
            flag = Flag(
                key=key,
                name=name,
                description=description,
                kind=kind,
                flag_type=flag_type,
                owner=group,
                risk=risk,
                expires_on=date,
                tags=clean_tags,
            )
            save(flag, actor, reason)
            for item in variant_items:
                save(Variant(flag=flag, **item), actor, reason)
            for env in environments:
                save(
                    FlagState(flag=flag, environment=env, enabled=False, fallthrough=fallthrough),
                    actor,
                    reason,
                )
            publish_on_commit([e.pk for e in environments])
            _send_changed(flag, [e.key for e in environments], actor, reason, "create_flag")
    except IntegrityError:
        # A concurrent create took the key between the check and the insert.
        raise FlagValidationError(
            {"key": [f"a flag with the key {key!r} already exists"]}
        ) from None

    return flag


def update_flag(
    flag: Flag,
    *,
    actor: Any,
    reason: str,
    name: Any = UNSET,
    description: Any = UNSET,
    flag_type: Any = UNSET,
    owner: Any = UNSET,
    risk: Any = UNSET,
    expires_on: Any = UNSET,
    tags: Any = UNSET,
    key: Any = UNSET,
    kind: Any = UNSET,
    change_request: Any = None,
    expected_version: int | None = None,
) -> Flag:
    """Change a flag's descriptive fields. ``key`` and ``kind`` are accepted only to refuse
    a change (they are immutable). Lowering the risk of a high-risk flag needs approval.
    ``expected_version``: the flag version the caller edited (``check_version``)."""
    reason = clean_reason(reason)
    check_permission(actor, "flagapp.change_flag")
    errors: dict[str, list[str]] = {}
    if key is not UNSET and key != flag.key:
        errors["key"] = ["a flag key cannot be changed (create a new flag)"]
    if kind is not UNSET and kind != flag.kind:
        errors["kind"] = ["a flag's kind cannot be changed (create a new flag)"]
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = _check_name(name, errors)
    if description is not UNSET:
        if not isinstance(description, str):
            errors.setdefault("description", []).append("expected text")
        changes["description"] = description
    if flag_type is not UNSET:
        _check_choice(flag_type, FlagType, "flag_type", errors)
        changes["flag_type"] = flag_type
    if owner is not UNSET:
        changes["owner"] = _resolve_owner(owner, errors)
    if risk is not UNSET:
        _check_choice(risk, Risk, "risk", errors)
        changes["risk"] = risk
    if expires_on is not UNSET:
        changes["expires_on"] = _parse_date(expires_on, errors)
    if tags is not UNSET:
        changes["tags"] = _check_tags(tags, errors)
    if "expires_on" not in errors and ("expires_on" in changes or "flag_type" in changes):
        new_type = changes.get("flag_type", flag.flag_type)
        new_date = changes.get("expires_on", flag.expires_on)
        _check_expiry(new_type, new_date, new_date != flag.expires_on, errors)
    if errors:
        raise FlagValidationError(errors)
    if not changes:
        return flag
    with transaction.atomic():
        locked = Flag.objects.select_for_update().get(pk=flag.pk)
        changes = {k: v for k, v in changes.items() if getattr(locked, k) != v}
        if check_version(locked, expected_version, unchanged=not changes):
            _copy_stored(locked, flag)
            return locked
        if "risk" in changes:
            require_approval(
                requires_approval(locked),
                change_request,
                locked,
                None,
                describe_change(
                    "update_flag",
                    flag=locked,
                    params={**changes, "expected_version": locked.version},
                ),
            )
        for k, v in changes.items():
            setattr(locked, k, v)
        bump(locked)
        save(locked, actor, reason)
        env_ids = list(Environment.objects.values_list("pk", flat=True))
        publish_on_commit(env_ids)
        _send_changed(locked, [], actor, reason, "update_flag", changes)
    _copy_stored(locked, flag)
    return locked


def _copy_stored(stored: Flag, flag: Flag) -> None:
    """Keep the caller's instance in step with what is stored (it may keep using it)."""
    if stored is flag:
        return
    for name in (
        "name",
        "description",
        "flag_type",
        "owner_id",
        "risk",
        "expires_on",
        "tags",
        "archived",
        "version",
        "updated_at",
    ):
        setattr(flag, name, getattr(stored, name))


def _enabled_in_protected(flag: Flag) -> bool:
    return FlagState.objects.filter(flag=flag, enabled=True, environment__protected=True).exists()


def _set_archived(
    flag: Flag,
    archived: bool,
    actor: Any,
    reason: str,
    change_request: Any,
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
        publish_on_commit(list(Environment.objects.values_list("pk", flat=True)))
        _send_changed(locked, [], actor, reason, op)
    _copy_stored(locked, flag)
    return locked


def _running_rollouts(flag: Flag) -> Any:
    from flagapp.models import RolloutPlan

    return RolloutPlan.objects.filter(flag=flag, state="running").select_related("environment")


def archive_notes(flag: Flag) -> list[str]:
    """What archiving ``flag`` will also do, in words (the admin shows these before asking
    for the reason): running rollouts are paused, open change requests withdrawn."""
    from flagapp.governance import change_requests as crs

    notes = [
        f"{flag.key}: rollout #{plan.pk} in {plan.environment.key} is {plan.state}; "
        "archiving pauses it."
        for plan in _running_rollouts(flag)
    ]
    for cr in crs.open_requests(flag):
        what = crs.describe_operation(cr.kind, cr.payload)
        notes.append(
            f"{flag.key}: change request #{cr.pk} ({what}) is {cr.status}; archiving withdraws it."
        )
    return notes


def _settle_archived(flag: Flag, actor: Any, reason: str, change_request: Any) -> None:
    """An archived flag leaves every snapshot: a rollout still stepping it or a request still
    waiting to change it would act on a flag nobody serves. Pause the one, withdraw the
    other (not the approved request being applied, if that is what archives it)."""
    from flagapp.governance import change_requests as crs
    from flagapp.rollouts import controller

    why = f"flag archived: {reason}"
    for plan in _running_rollouts(flag):
        controller.pause(plan, actor=actor, reason=why)
    applying = getattr(change_request, "pk", None)
    for cr in crs.open_requests(flag).exclude(pk=applying):
        crs.withdraw(cr, actor=actor, reason=why, flag_archived=True)


def archive_flag(
    flag: Flag,
    *,
    actor: Any,
    reason: str,
    change_request: Any = None,
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
    actor: Any,
    reason: str,
    change_request: Any = None,
    expected_version: int | None = None,
) -> Flag:
    return _set_archived(
        flag, False, actor, reason, change_request, "unarchive_flag", expected_version
    )


def delete_flag(
    flag: Flag,
    *,
    actor: Any,
    reason: str,
    change_request: Any = None,
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
            deleted_by=actor if getattr(actor, "is_authenticated", False) else None,
            reason=reason,
        )
        save(tomb, actor, reason)
        publish_on_commit(list(Environment.objects.values_list("pk", flat=True)))
    return tomb


def set_variants(
    flag: Flag,
    variants: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    actor: Any,
    reason: str,
    change_request: Any = None,
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
    actor: Any,
    reason: str,
    change_request: Any,
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
        publish_on_commit([s.environment_id for s in states])
        _send_changed(
            flag,
            [s.environment.key for s in states],
            actor,
            reason,
            "set_variants",
            {"variants": [{"key": i["key"], "value": i["value"]} for i in items]},
        )
    return result


def save_flag(
    flag: Flag | None,
    *,
    actor: Any,
    reason: str,
    expected_version: int | None = None,
    variants: Any = UNSET,
    archived: Any = UNSET,
    states: Sequence[Mapping[str, Any]] = (),
    change_request: Any = None,
    **fields: Any,
) -> Flag:
    """Save a whole flag page in one transaction: its fields, its variants, its archived
    state and the states that changed -- what the admin's flag page and the API's flag
    ``PATCH`` submit. ``flag`` None creates one (``fields`` are ``create_flag``'s, with
    ``key`` and ``kind``; ``states`` are not accepted then).

    Each part goes through its own service (``update_flag``, ``set_variants``,
    ``archive_flag``/``unarchive_flag``, ``update_flag_state``), so validation, permissions,
    approval (an ``ApprovalRequired`` of any part rolls the whole save back; its change is
    what a change request proposes), history with ``reason`` and publishing are theirs.

    Versions: ``expected_version`` is the flag version the caller edited, checked by the
    first part that changes something (``check_version``: a stale save that changes
    nothing at the flag level succeeds; one that does is refused whole). Each entry of
    ``states`` -- ``{"environment": Environment | key, "expected_version", "enabled"?,
    "fallthrough"?, "prerequisites"?, "rules"?}`` -- carries its own state's version, so
    renaming a flag is never refused because another environment's state moved on.

    Removed variants are kept until the states stop using them (the states are written
    between the two variant writes). An error about one state carries ``environment``
    (its key) so a form can show it on that state.
    """
    if flag is None:
        if states:
            raise FlagValidationError({"states": ["a new flag has a disabled state everywhere"]})
        if not isinstance(variants, _Unset) and variants is not None:
            fields["variants"] = variants
        with transaction.atomic():
            created = create_flag(actor=actor, reason=reason, **fields)
            if archived is True:
                archive_flag(created, actor=actor, reason=reason)
        return created

    expected = expected_version

    def moved(before: int) -> None:
        # Once a part wrote (so passed the check), the next part edits the new version.
        nonlocal expected
        if expected is not None and flag.version != before:
            expected = flag.version

    with transaction.atomic():
        Flag.objects.select_for_update().get(pk=flag.pk)
        flag.refresh_from_db()
        if archived is False and flag.archived:
            before = flag.version
            unarchive_flag(flag, actor=actor, reason=reason, expected_version=expected)
            moved(before)
        if fields:
            before = flag.version
            update_flag(
                flag,
                actor=actor,
                reason=reason,
                expected_version=expected,
                change_request=change_request,
                **fields,
            )
            moved(before)
        new_items: list[dict[str, Any]] = []
        removed: list[dict[str, Any]] = []
        if not isinstance(variants, _Unset):
            new_items = normalize_variants(variants)
            new_keys = {v["key"] for v in new_items}
            removed = [
                {"key": v.key, "value": v.value, "description": v.description}
                for v in flag.variants.order_by("order", "key")
                if v.key not in new_keys
            ]
            # Keep removed variants until the states stop using them.
            first = new_items + removed if (removed and states) else new_items
            before = flag.version
            set_variants(
                flag,
                first,
                actor=actor,
                reason=reason,
                expected_version=expected,
                change_request=change_request,
            )
            moved(before)
        for entry in states:
            _save_state(flag, entry, actor, reason, change_request)
        if removed and states:
            set_variants(flag, new_items, actor=actor, reason=reason, change_request=change_request)
        if archived is True and not flag.archived:
            archive_flag(
                flag,
                actor=actor,
                reason=reason,
                expected_version=expected,
                change_request=change_request,
            )
        flag.refresh_from_db()
    return flag


def _save_state(
    flag: Flag, entry: Mapping[str, Any], actor: Any, reason: str, change_request: Any
) -> None:
    from flagapp.exceptions import FlagappError

    from .states import update_flag_state

    params = dict(entry)
    env = params.pop("environment")
    if not isinstance(env, Environment):
        env = Environment.objects.filter(key=env).first()
        if env is None:
            raise FlagValidationError({"states": [f"no environment {entry['environment']!r}"]})
    try:
        update_flag_state(
            flag, env, actor=actor, reason=reason, change_request=change_request, **params
        )
    except FlagappError as exc:
        exc.environment = env.key  # type: ignore[attr-defined]
        raise
