"""Flag services: create and update a flag's own fields (the lifecycle is
``services.lifecycle``, variants ``services.variants``, a whole flag page ``services.save``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from flagapp.conf import settings
from flagapp.documents import envelope, flag_entry
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
    bump,
    check_permission,
    check_version,
    clean_reason,
    describe_change,
    publish_on_commit,
    require_approval,
    save,
)
from ._validation import normalize_variants, validate_flag_in_environment

if TYPE_CHECKING:
    from flagapp.policy import Actor, Approval

__all__ = [
    "check_new_key",
    "create_flag",
    "default_fallthrough",
    "update_flag",
]

_TAG_RE = re.compile(r"^[\w.:/-]{1,50}$")


def _send_changed(
    flag: Flag,
    env_keys: Sequence[str],
    actor: Actor,
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
    actor: Actor,
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
            publish_on_commit([e.pk for e in environments], flags=[flag.key])
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
    actor: Actor,
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
    change_request: Approval | None = None,
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
        publish_on_commit(env_ids, flags=[locked.key])
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
