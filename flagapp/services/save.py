"""``save_flag``: a whole flag page (fields, variants, archived, the states that changed) in one
transaction -- what the admin's flag page and the API's flag ``PATCH`` submit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db import transaction

from flagapp.exceptions import FlagValidationError
from flagapp.models import (
    Environment,
    Flag,
)

from ._base import (
    UNSET,
    _Unset,
)
from ._validation import normalize_variants
from .flags import create_flag, update_flag
from .lifecycle import archive_flag, unarchive_flag
from .variants import set_variants

if TYPE_CHECKING:
    from flagapp.policy import Actor, Approval

__all__ = ["save_flag"]


def save_flag(
    flag: Flag | None,
    *,
    actor: Actor,
    reason: str,
    expected_version: int | None = None,
    variants: Any = UNSET,
    archived: Any = UNSET,
    states: Sequence[Mapping[str, Any]] = (),
    change_request: Approval | None = None,
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
    flag: Flag, entry: Mapping[str, Any], actor: Actor, reason: str, change_request: Approval | None
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
