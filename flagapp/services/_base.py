"""Shared machinery of the services: reason and actor handling, permissions, history
attribution, engine validation with field-mapped errors, governance,
publish on commit (through the outbox of :mod:`flagapp.publishing`)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

from django.db import transaction
from django.db.models import Model

from flagapp.exceptions import (
    ApprovalRequired,
    ChangeNotPermitted,
    FlagValidationError,
    VersionConflict,
)
from flagapp.policy import Approval, change_request_covers

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from flagapp.models import Environment, Flag, Segment
    from flagapp.policy import Actor


class _Unset:
    """Marks an argument the caller did not pass (None is a real value: a null
    fallthrough, no expiry date)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()

logger = logging.getLogger("flagapp")


def clean_reason(reason: Any) -> str:
    """Every change needs a reason: who, when and *why* is the audit trail."""
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise FlagValidationError({"reason": ["A reason for the change is required."]})
    return text


def history_user(actor: Actor) -> User | None:
    """The user instance to store (simple-history, the ``created_by``/``deleted_by``
    foreign keys), or None (system actors, anonymous users). The cast is the boundary:
    Django types ``request.user`` as ``AbstractBaseUser``, its foreign keys as the
    configured user model."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None
    return cast("User", actor)


def check_permission(actor: Actor, *perms: str) -> None:
    """``actor`` None is the system (management commands, migrations, Celery): allowed.
    A user must hold every permission (superusers hold all)."""
    if actor is None:
        return
    if not getattr(actor, "is_authenticated", False) or not getattr(actor, "is_active", True):
        raise ChangeNotPermitted("an authenticated, active user is required")
    # has_perm comes with PermissionsMixin (every user model the admin supports); a user
    # model without it holds no permission
    has_perm = getattr(actor, "has_perm", None)
    missing = [p for p in perms if has_perm is None or not has_perm(p)]
    if missing:
        raise ChangeNotPermitted(f"{actor} lacks the permission(s): {', '.join(missing)}")


def attribute(instance: Model, actor: Actor, reason: str) -> Model:
    """Attach the history user and change reason simple-history records on the next save or
    delete of ``instance``."""
    instance._history_user = history_user(actor)  # type: ignore[attr-defined]
    instance._change_reason = reason  # type: ignore[attr-defined]
    return instance


def save(instance: Model, actor: Actor, reason: str, **kwargs: Any) -> None:
    attribute(instance, actor, reason).save(**kwargs)


def delete(instance: Model, actor: Actor, reason: str) -> None:
    attribute(instance, actor, reason).delete()


def resource_name(obj: Model) -> str:
    """A versioned object in words, for conflict messages: ``flag checkout.new-flow``,
    ``segment beta``, ``environment production``, ``checkout.new-flow in production``."""
    from flagapp.models import FlagState

    if isinstance(obj, FlagState):
        return f"{obj.flag.key} in {obj.environment.key}"
    return f"{type(obj)._meta.verbose_name} {getattr(obj, 'key', obj.pk)}"


def check_version(obj: Model, expected_version: int | None, *, unchanged: bool) -> bool:
    """The one optimistic-concurrency rule of every versioned resource (flags, flag states,
    segments, environments, rollout-plan drafts, experiments), for the admin, the API,
    governance and the commands alike.

    ``obj`` is the row as stored, locked by the caller (``select_for_update``) so the version
    checked is the version written over; ``unchanged`` says whether the write asks for
    exactly what is stored. Returns True when there is nothing to write: an identical write
    succeeds even with a stale ``expected_version`` (issue 10, "a client whose write
    committed always learns that it committed": the retry of a write whose first answer was
    lost asks for what is stored, and must not get a 409 for its own change). Raises
    :class:`VersionConflict` naming the resource when ``expected_version`` is stale and the
    write would change something; ``None`` skips the check (the system owning the whole
    configuration, e.g. a flags-as-code import).
    """
    if unchanged:
        return True
    current = int(getattr(obj, "version", 0))
    if expected_version is not None and current != expected_version:
        raise VersionConflict(current, expected_version, resource=resource_name(obj))
    return False


def bump(obj: Model) -> None:
    """Move ``obj``'s version on (every write that changes something)."""
    obj.version = int(getattr(obj, "version", 0) or 0) + 1  # type: ignore[attr-defined]


def require_approval(
    needed: bool,
    change_request: Approval | None,
    flag: Flag | None,
    environment: Environment | None,
    change: Mapping[str, Any],
) -> None:
    """Raise ApprovalRequired when the policy asks for approval and ``change_request`` does
    not cover this change."""
    if needed and not change_request_covers(change_request, flag, environment):
        raise ApprovalRequired(change)


def describe_change(
    operation: str,
    *,
    flag: Flag | None = None,
    environment: Environment | None = None,
    segment: Segment | None = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-friendly description of a proposed change that
    :func:`flagapp.services.apply_change` can replay once approved."""
    change: dict[str, Any] = {"operation": operation, "params": _jsonable(dict(params or {}))}
    if flag is not None:
        change["flag"] = flag.key
    if environment is not None:
        change["environment"] = environment.key
    if segment is not None:
        change["segment"] = segment.key
    return change


def _jsonable(value: Any) -> Any:
    if isinstance(value, _Unset):
        return None
    if isinstance(value, Model):
        return getattr(value, "key", None) or getattr(value, "name", None) or value.pk
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items() if not isinstance(v, _Unset)}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# ---------------------------------------------------------------------------------------
# publishing


def publish_on_commit(
    environment_ids: Iterable[int],
    using: str = "default",
    *,
    flags: Iterable[str] | None = None,
    segments: Iterable[str] | None = None,
) -> None:
    """Record in the current transaction that these environments must be published, and
    publish them once it commits: a row per environment in the publish outbox
    (:func:`flagapp.publishing.record`), so the need to publish commits or rolls back with
    the change. A failure after COMMIT is logged (never raised to the author of the write)
    and the row stays for the reconciler (``manage.py flagapp_reconcile``).

    ``flags`` / ``segments``: the keys the write touched, so the publish re-reads only those
    (``flagapp.assembly``); omit both when the write may change anything else."""
    from flagapp import publishing

    publishing.record(environment_ids, using=using, flags=flags, segments=segments)


def on_commit(func: Callable[[], Any]) -> None:
    """Run ``func`` after COMMIT. Robust: a failing receiver is logged by Django and never
    turns a saved change into an error for its author."""
    transaction.on_commit(func, robust=True)


# ---------------------------------------------------------------------------------------
# engine validation


def parse_or_raise(
    document: Mapping[str, Any],
    *,
    flag_key: str | None = None,
    segment_key: str | None = None,
    field_map: Mapping[str, str] | None = None,
    context: str = "",
) -> None:
    """Validate ``document`` with the engine's parser; turn a ParseError into a
    FlagValidationError keyed by the form/API field the JSON path points into.

    ``field_map`` renames document keys to field names (``when`` -> ``conditions``).
    """
    from flagapp.documents import parse
    from openfeature_provider.engine import ParseError

    try:
        parse(document)
    except ParseError as exc:
        raise FlagValidationError(
            {
                _field_for(exc.path, flag_key, segment_key, field_map or {}): [
                    _message(exc, flag_key, segment_key, context)
                ]
            }
        ) from None


def _prefix(kind: str, key: str) -> str:
    return f"$.{kind}[{json.dumps(key, ensure_ascii=False)}]"


def _field_for(
    path: str, flag_key: str | None, segment_key: str | None, field_map: Mapping[str, str]
) -> str:
    for kind, key in (("flags", flag_key), ("segments", segment_key)):
        if key is None:
            continue
        prefix = _prefix(kind, key)
        if path.startswith(prefix):
            m = re.match(r"\.(\w+)", path[len(prefix) :])
            if m:
                return field_map.get(m.group(1), m.group(1))
            return "__all__"
    if path.startswith("$.flags[") and flag_key is not None:
        return "prerequisites"  # another flag, present only as a prerequisite
    if path.startswith("$.segments["):
        return field_map.get("segments", "__all__")
    return "__all__"


def _message(exc: Any, flag_key: str | None, segment_key: str | None, context: str) -> str:
    path: str = exc.path
    for kind, key in (("flags", flag_key), ("segments", segment_key)):
        if key is not None and path.startswith(_prefix(kind, key)):
            path = path[len(_prefix(kind, key)) :].lstrip(".")
            break
    where = f"{context}: " if context else ""
    return f"{where}{path}: {exc.message}" if path else f"{where}{exc.message}"
