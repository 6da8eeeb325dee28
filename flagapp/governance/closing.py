"""Closing a change request without applying it, and the record every transition leaves.

``reject`` (a reviewer, with a comment) and ``withdraw`` (the author; or archiving the flag,
which withdraws every open request so that no approval applies to an archived flag later)
end a request with nothing applied. They need no services, which is why they live apart
from the rest of the lifecycle (:mod:`flagapp.governance.change_requests`, which applies
through the services and re-exports these): archiving a flag is itself a service
(``services.lifecycle``), and it withdraws requests through this module without importing
the module that calls the services.

Every transition, here and in ``change_requests``, is one locked row (:func:`locked`), a
history row naming the user and the reason (:func:`record`) and, for the events people
subscribe to, ``change_request_changed`` after COMMIT (:func:`announce_event`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from flagapp.exceptions import ChangeNotPermitted, FlagValidationError
from flagapp.models import ChangeRequest
from flagapp.notifications.outbox import announce
from flagapp.signals import change_request_changed

from .operations import APPROVE_PERMISSION

if TYPE_CHECKING:
    from flagapp.models import Flag

__all__ = [
    "announce_event",
    "can_review",
    "check_reviewer",
    "locked",
    "open_requests",
    "record",
    "reject",
    "require_user",
    "withdraw",
]


def record(cr: ChangeRequest, user: Any, reason: str) -> None:
    cr._history_user = user  # type: ignore[attr-defined]
    cr._change_reason = reason  # type: ignore[attr-defined]


def announce_event(cr: ChangeRequest, event: str, actor: Any) -> None:
    """``change_request_changed`` after COMMIT (webhooks, Slack): a request whose
    transaction rolls back never notifies."""
    announce(change_request_changed, type(cr), change_request=cr, event=event, actor=actor)


def require_user(user: Any) -> None:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        raise ChangeNotPermitted("an authenticated, active user is required")


def can_review(cr: ChangeRequest, user: Any) -> bool:
    """Whether ``user`` may approve or reject ``cr`` (never the author: two persons)."""
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and user.is_active
        and user.pk != cr.author_id
        and user.has_perm(APPROVE_PERMISSION)
    )


def check_reviewer(cr: ChangeRequest, reviewer: Any) -> None:
    require_user(reviewer)
    if reviewer.pk == cr.author_id:
        raise ChangeNotPermitted("the author of a change request cannot review it")
    if not reviewer.has_perm(APPROVE_PERMISSION):
        raise ChangeNotPermitted(f"{reviewer} lacks the permission {APPROVE_PERMISSION}")


def locked(cr: ChangeRequest) -> ChangeRequest:
    # of=("self",): PostgreSQL cannot lock the nullable side (reviewer) of an outer join.
    return (
        ChangeRequest.objects.select_for_update(of=("self",))
        .select_related("author", "reviewer")
        .get(pk=cr.pk)
    )


def reject(cr: ChangeRequest, *, reviewer: Any, comment: str) -> ChangeRequest:
    """Reject a pending request; a comment (why) is required."""
    text = (comment or "").strip()
    if not text:
        raise FlagValidationError({"comment": ["Say why the change is rejected."]})
    with transaction.atomic():
        cr = locked(cr)
        check_reviewer(cr, reviewer)
        if cr.status != ChangeRequest.STATUS_PENDING:
            raise ChangeNotPermitted(f"change request #{cr.pk} is {cr.status}, not pending")
        cr.status = ChangeRequest.STATUS_REJECTED
        cr.reviewer = reviewer
        cr.reviewed_at = timezone.now()
        cr.review_comment = text
        record(cr, reviewer, f"rejected: {text}")
        cr.save()
        announce_event(cr, "rejected", reviewer)
    return cr


def withdraw(
    cr: ChangeRequest, *, actor: Any, reason: str = "", flag_archived: bool = False
) -> ChangeRequest:
    """Withdraw a pending (or approved, not applied) request: nothing is applied, ever.

    The author may withdraw their own request. ``flag_archived=True`` is the archive
    path (the archiving user, who needs the flag change permission, withdraws every open
    request on the flag so no approval applies to an archived flag later).
    """
    if not (flag_archived and actor is None):  # None: the system archiving the flag
        require_user(actor)
    with transaction.atomic():
        cr = locked(cr)
        if cr.status not in (ChangeRequest.STATUS_PENDING, ChangeRequest.STATUS_APPROVED):
            raise ChangeNotPermitted(f"change request #{cr.pk} is {cr.status}, not open")
        if flag_archived:
            if actor is not None and not actor.has_perm("flagapp.change_flag"):
                raise ChangeNotPermitted(f"{actor} lacks the permission flagapp.change_flag")
        elif actor.pk != cr.author_id:
            raise ChangeNotPermitted("only the author can withdraw a change request")
        cr.status = ChangeRequest.STATUS_WITHDRAWN
        cr.detail = (reason or "").strip()
        record(cr, actor, f"withdrawn: {cr.detail}" if cr.detail else "withdrawn")
        cr.save()
    return cr


def open_requests(flag: Flag) -> Any:
    """Pending and approved-but-unapplied requests of ``flag``."""
    return ChangeRequest.objects.filter(
        flag=flag, status__in=(ChangeRequest.STATUS_PENDING, ChangeRequest.STATUS_APPROVED)
    ).order_by("created_at", "id")
