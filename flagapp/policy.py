"""Governance policy: which changes need an approved change request.

Why a separate module: the rule ("high-risk flags and protected environments change only
through an approved change request") is a policy decision that deployments may want to
tune, and both the services and the governance app (change requests) consult it. The
services raise :class:`flagapp.exceptions.ApprovalRequired` when :func:`requires_approval`
is true and no approved change request is passed.

A change request is anything with an ``is_approved`` attribute (bool) and, optionally,
``flag_id`` / ``environment_id`` attributes restricting what it covers; the governance
helper's ``ChangeRequest`` model provides them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Environment, Flag

__all__ = ["change_request_covers", "kill_switch_bypasses_approval", "requires_approval"]


def requires_approval(flag: Flag | None, environment: Environment | None = None) -> bool:
    """True when a change to ``flag`` (in ``environment``, or in every environment when
    None) must go through an approved change request: the flag is high risk or the
    environment is protected."""
    if flag is not None and flag.risk == "high":
        return True
    return bool(environment is not None and environment.protected)


def kill_switch_bypasses_approval() -> bool:
    """Turning a flag *off* is the emergency brake: it serves the code's own default. By
    default it needs no approval (FLAGAPP["KILL_SWITCH_BYPASSES_APPROVAL"])."""
    from .conf import settings

    return bool(settings.get("KILL_SWITCH_BYPASSES_APPROVAL", True))


def change_request_covers(
    change_request: Any, flag: Flag | None, environment: Environment | None
) -> bool:
    """Whether ``change_request`` is approved and is about this flag and environment."""
    if change_request is None or not bool(getattr(change_request, "is_approved", False)):
        return False
    cr_flag = getattr(change_request, "flag_id", None)
    if cr_flag is not None and flag is not None and cr_flag != flag.pk:
        return False
    cr_env = getattr(change_request, "environment_id", None)
    return not (cr_env is not None and environment is not None and cr_env != environment.pk)
