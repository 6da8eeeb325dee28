"""The one write path of flagapp: the admin, the REST API, the management commands and the
governance app all change configuration through these functions.

Every function takes keyword-only ``actor`` (a user, or None for the system) and
``reason`` (required, non-blank) and:

- validates (field-keyed :class:`~flagapp.exceptions.FlagValidationError`; targeting is
  validated by the engine's own parser),
- checks the actor's Django permissions (:class:`~flagapp.exceptions.ChangeNotPermitted`),
- applies governance (:mod:`flagapp.policy`; :class:`~flagapp.exceptions.ApprovalRequired`
  unless an approved ``change_request`` covering the change is passed),
- checks the edited version of a flag state (:class:`~flagapp.exceptions.VersionConflict`,
  nothing written),
- writes in one transaction with history (simple-history, user + reason),
- publishes the affected environments' snapshots once, on commit.

A change identical to what is stored writes nothing (so imports are idempotent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flagapp.exceptions import FlagValidationError

from ._base import UNSET
from .environments import (
    Promotion,
    PromotionStep,
    copy_environment,
    create_environment,
    promote_environment,
    promotion_plan,
    update_environment,
)
from .experiments import create_experiment, update_experiment, validate_experiment
from .flags import create_flag, update_flag
from .lifecycle import archive_flag, archive_notes, delete_flag, unarchive_flag
from .save import save_flag
from .segments import (
    create_segment,
    delete_segment,
    segment_usage,
    segment_usage_page,
    segment_users,
    update_segment,
)
from .states import set_flag_enabled, update_flag_state
from .variants import set_variants

if TYPE_CHECKING:
    from flagapp.policy import Actor, Approval

__all__ = [
    "UNSET",
    "Promotion",
    "PromotionStep",
    "apply_change",
    "archive_flag",
    "archive_notes",
    "copy_environment",
    "create_environment",
    "create_experiment",
    "create_flag",
    "create_segment",
    "delete_flag",
    "delete_segment",
    "promote_environment",
    "promotion_plan",
    "save_flag",
    "segment_usage",
    "segment_usage_page",
    "segment_users",
    "set_flag_enabled",
    "set_variants",
    "unarchive_flag",
    "update_environment",
    "update_experiment",
    "update_flag",
    "update_flag_state",
    "update_segment",
    "validate_experiment",
]

_REPLAYABLE = {
    "update_flag": ("flag",),
    "archive_flag": ("flag",),
    "unarchive_flag": ("flag",),
    "delete_flag": ("flag",),
    "set_variants": ("flag",),
    "update_flag_state": ("flag", "environment"),
    "set_flag_enabled": ("flag", "environment"),
    "update_environment": ("environment",),
    "update_segment": ("segment",),
}


def apply_change(
    change: Mapping[str, Any], *, actor: Actor, reason: str, change_request: Approval | None = None
) -> Any:
    """Replay a change described by :class:`~flagapp.exceptions.ApprovalRequired`
    (``{"operation", "flag"?, "environment"?, "segment"?, "params"}``), typically once its
    change request is approved. ``expected_version`` in the params makes a stale request
    fail with VersionConflict rather than overwrite newer edits."""
    from flagapp.models import Environment, Flag, Segment

    op = change.get("operation")
    if op not in _REPLAYABLE:
        raise FlagValidationError({"operation": [f"cannot apply operation {op!r}"]})
    args: list[Any] = []
    try:
        for name in _REPLAYABLE[op]:
            key = change[name]
            model = {"flag": Flag, "environment": Environment, "segment": Segment}[name]
            args.append(model._default_manager.get(key=key))
    except KeyError as exc:
        raise FlagValidationError({"__all__": [f"the change names no {exc.args[0]}"]}) from None
    except (Flag.DoesNotExist, Environment.DoesNotExist, Segment.DoesNotExist) as exc:
        raise FlagValidationError({"__all__": [str(exc)]}) from None
    params = dict(change.get("params") or {})
    if op == "set_variants":
        args.append(params.pop("variants"))
    func = globals()[op]
    return func(*args, actor=actor, reason=reason, change_request=change_request, **params)
