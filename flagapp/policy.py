"""Governance policy: which changes need an approved change request.

Why a separate module: the rule ("high-risk flags and protected environments change only
through an approved change request") is a policy decision that deployments may want to
tune, and both the services and the governance app (change requests) consult it. The
services raise :class:`flagapp.exceptions.ApprovalRequired` when :func:`requires_approval`
is true and no approved change request is passed.

What the services accept as an approval is typed by the :class:`Approval` protocol
(``is_approved``, and ``flag_id`` / ``environment_id`` restricting what it covers, None
meaning "any"). Two kinds satisfy it: the governance app's ``ChangeRequest`` model, and
:class:`GrantedApproval`, an approval that exists without a change-request row (a rollout
plan approved as a whole, carried to each of its steps; the blast-radius dry run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

    from .models import Environment, Flag

#: Who makes a change, as the services take it: the request's user (any user model, as
#: Django types ``request.user``; an anonymous or inactive one is refused by
#: ``services._base.check_permission``) or None, the system (management commands, Celery
#: tasks, the rollout controller). ``services._base.user_or_none`` gives what a foreign key
#: to the user stores.
Actor: TypeAlias = "AbstractBaseUser | AnonymousUser | None"

__all__ = [
    "Actor",
    "Approval",
    "GrantedApproval",
    "change_request_covers",
    "kill_switch_bypasses_approval",
    "requires_approval",
]


@runtime_checkable
class Approval(Protocol):
    """An approval the services can check (:func:`change_request_covers`)."""

    @property
    def is_approved(self) -> bool: ...

    @property
    def flag_id(self) -> int | None: ...

    @property
    def environment_id(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class GrantedApproval:
    """An approval without a change-request row, restricted to one flag and/or environment
    (None = any): a rollout plan's approval carried to its steps and rollback, or the stand-in
    a blast-radius dry run uses (never saved, its transaction is rolled back)."""

    flag_id: int | None = None
    environment_id: int | None = None
    is_approved: bool = True


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
    change_request: Approval | None, flag: Flag | None, environment: Environment | None
) -> bool:
    """Whether ``change_request`` is approved and is about this flag and environment."""
    if change_request is None or not bool(change_request.is_approved):
        return False
    cr_flag = change_request.flag_id
    if cr_flag is not None and flag is not None and cr_flag != flag.pk:
        return False
    cr_env = change_request.environment_id
    return not (cr_env is not None and environment is not None and cr_env != environment.pk)
