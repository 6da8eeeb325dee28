"""Change requests: the two-person rule for high-risk flags and protected environments.

Lifecycle::

    propose ──► pending ──approve──► approved ──apply──► applied
                   │                    │
                   └──reject──► rejected └──(stale base version)──► conflicted

* ``propose`` stores the change exactly as ``ApprovalRequired.change`` describes it (the
  services' own input shape), the version it was made against, the author's reason and
  the blast radius. The change is validated by a dry run first, so a request that could
  never be applied is refused at once, not after a review.
* ``approve`` needs ``flagapp.approve_changerequest`` and a reviewer who is not the author;
  it records the approval and applies the change right away (one click for the reviewer,
  no approved-but-forgotten requests). Applying goes through ``services.apply_change`` with
  the approved request, so validation, the version check and the history are the normal
  ones; the history names the author as the user and the request and reviewer in the reason.
* If the edited object moved on since the request was made, the services refuse the stale
  version: the request becomes ``conflicted`` with the message, nothing is overwritten and
  the proposed change stays readable on the request, to be proposed again.
* Any other failure while applying (the author lost the permission, the flag was archived)
  leaves the request ``approved`` with ``detail`` set; ``apply`` retries it.

Every step is a history row of the request (simple-history: user + reason).

This module is the lifecycle; its parts live beside it and are re-exported here, the names
callers have always used: closing a request without applying it (``reject``, ``withdraw``:
:mod:`flagapp.governance.closing`), the operations a request can carry (who may propose each, their
names in words: :mod:`flagapp.governance.operations`), the dry run and blast radius
(:mod:`flagapp.governance.preview`) and the diff against what is stored
(:mod:`flagapp.governance.diff`).

The kill switch needs no request: ``services`` let anyone with the change permission turn a
flag *off* directly (with a reason) even where approval is required, because serving the
code's own default is the safe direction and an emergency cannot wait for a second person
(``FLAGAPP["KILL_SWITCH_BYPASSES_APPROVAL"]``, default true). Turning it back on, and every
targeting change, needs approval.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from flagapp.exceptions import (
    ApprovalRequired,
    ChangeNotPermitted,
    DuplicateChangeRequest,
    FlagappError,
    FlagValidationError,
    VersionConflict,
)
from flagapp.models import ChangeRequest
from flagapp.services import apply_change

from .closing import (
    announce_event,
    can_review,
    check_reviewer,
    locked,
    open_requests,
    record,
    reject,
    require_user,
    withdraw,
)
from .diff import current_values, diff, effect
from .operations import (
    APPROVE_PERMISSION,
    OPERATION_LABELS,
    OPERATION_PERMISSIONS,
    describe_operation,
)
from .preview import named_objects, preview, radius_since_published

if TYPE_CHECKING:
    from flagapp.governance.blast_radius import BlastRadius
    from flagapp.models import Environment, Flag

__all__ = [
    "APPROVE_PERMISSION",
    "OPERATION_LABELS",
    "apply",
    "approve",
    "can_review",
    "check_can_propose",
    "check_not_stale",
    "describe_operation",
    "diff",
    "open_requests",
    "pending",
    "preview",
    "propose",
    "propose_from",
    "radius_since_published",
    "reject",
    "withdraw",
]

#: The old private name, still read by ``flagapp.api.change_requests``.
_OPERATION_PERMISSIONS = OPERATION_PERMISSIONS

# ---------------------------------------------------------------------------------------
# the lifecycle


def check_can_propose(
    user: Any, change: Mapping[str, Any]
) -> tuple[Flag | None, Environment | None]:
    """Raise unless ``user`` could make ``change`` directly but for the approval: the same
    permissions as the direct edit (plus the protected-environment one where it applies).
    Returns the flag and environment the change names."""
    require_user(user)
    operation = change.get("operation")
    perm = OPERATION_PERMISSIONS.get(str(operation))
    if perm is None:
        raise FlagValidationError({"operation": [f"cannot propose operation {operation!r}"]})
    flag, environment = named_objects(change)
    perms = [perm]
    if environment is not None and environment.protected and perm.endswith("_flagstate"):
        perms.append("flagapp.change_protected_environment")
    for needed in perms:
        if not user.has_perm(needed):
            raise ChangeNotPermitted(f"{user} lacks the permission {needed}")
    return flag, environment


def propose(
    change: Mapping[str, Any],
    *,
    author: Any,
    reason: str,
    blast_radius: BlastRadius | None = None,
    compute_blast_radius: bool = True,
) -> ChangeRequest:
    """Store ``change`` (``ApprovalRequired.change`` shape) as a pending request.

    Refused at once when the author could not make the change directly (permission), or
    when the services would refuse it (validated by the dry run that also measures the
    blast radius).
    """
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise FlagValidationError({"reason": ["A reason for the change is required."]})
    flag, environment = check_can_propose(author, change)
    operation = change.get("operation")
    if compute_blast_radius and blast_radius is None:
        blast_radius = preview(change)
    payload = copy.deepcopy({k: v for k, v in change.items() if k != "operation"})
    params = payload.get("params") or {}
    base_version = params.get("expected_version")
    # A second identical proposal (same effect, same base) would split the review.
    candidate = ChangeRequest(
        flag=flag,
        environment=environment,
        kind=str(operation),
        payload=payload,
        base_version=base_version if isinstance(base_version, int) else None,
    )
    proposed = effect(candidate)
    same = ChangeRequest.objects.filter(
        status=ChangeRequest.STATUS_PENDING,
        flag_key=str(change.get("flag") or ""),
        environment_key=str(change.get("environment") or ""),
        kind=str(operation),
    ).order_by("id")
    for existing in same:
        if effect(existing) == proposed:
            raise DuplicateChangeRequest(existing.pk)
    cr = ChangeRequest(
        flag=flag,
        flag_key=str(change.get("flag") or ""),
        environment=environment,
        environment_key=str(change.get("environment") or ""),
        kind=str(operation),
        payload=payload,
        base_version=base_version if isinstance(base_version, int) else None,
        author=author,
        reason=text,
        blast_radius=blast_radius.as_dict() if blast_radius is not None else None,
    )
    record(cr, author, f"proposed: {text}")
    with transaction.atomic():
        cr.save()
        announce_event(cr, "proposed", author)
    return cr


def propose_from(
    exc: ApprovalRequired, *, author: Any, reason: str, **kwargs: Any
) -> ChangeRequest:
    """The usual call site: ``except ApprovalRequired as exc: propose_from(exc, ...)``."""
    return propose(exc.change, author=author, reason=reason, **kwargs)


def approve(cr: ChangeRequest, *, reviewer: Any, comment: str = "") -> ChangeRequest:
    """Approve a pending request and apply it. Returns the request, now ``applied``,
    ``conflicted`` (stale base version) or still ``approved`` (``detail`` says why the
    apply failed)."""
    with transaction.atomic():
        cr = locked(cr)
        check_reviewer(cr, reviewer)
        if cr.status != ChangeRequest.STATUS_PENDING:
            raise ChangeNotPermitted(f"change request #{cr.pk} is {cr.status}, not pending")
        check_not_stale(cr)
        cr.status = ChangeRequest.STATUS_APPROVED
        cr.reviewer = reviewer
        cr.reviewed_at = timezone.now()
        cr.review_comment = (comment or "").strip()
        record(cr, reviewer, f"approved: {cr.review_comment}" if cr.review_comment else "approved")
        cr.save()
        announce_event(cr, "approved", reviewer)
    return apply(cr, actor=reviewer)


def check_not_stale(cr: ChangeRequest) -> None:
    """The approve guard of the admin and the API alike: a request made against a version
    that moved on cannot be approved (it could only conflict, or overwrite what the reviewer
    never saw); it stays pending and says so, and the author proposes it again."""
    found = diff(cr)
    if found["stale"]:
        raise VersionConflict(
            found["current_version"],
            cr.base_version,
            resource=f"change request #{cr.pk} (propose it again on the current version)",
        )


def apply(cr: ChangeRequest, *, actor: Any) -> ChangeRequest:
    """Apply an approved request (again). ``actor`` must be its reviewer, its author or
    another user with the approve permission. The write is attributed to the author."""
    require_user(actor)
    with transaction.atomic():
        cr = locked(cr)
        if cr.status != ChangeRequest.STATUS_APPROVED:
            raise ChangeNotPermitted(f"change request #{cr.pk} is {cr.status}, not approved")
        if actor.pk not in (cr.author_id, cr.reviewer_id) and not actor.has_perm(
            APPROVE_PERMISSION
        ):
            raise ChangeNotPermitted(f"{actor} may not apply change request #{cr.pk}")
        reviewer = cr.reviewer.get_username() if cr.reviewer else "?"
        reason = f"{cr.reason} [change request #{cr.pk}, approved by {reviewer}]"
        before, _ = current_values(cr)
        try:
            with transaction.atomic():
                apply_change(cr.change, actor=cr.author, reason=reason, change_request=cr)
        except VersionConflict as exc:
            cr.status = ChangeRequest.STATUS_CONFLICTED
            cr.detail = (
                f"{exc}. The change was made against version {cr.base_version}; "
                "nothing was applied -- propose it again on the current version."
            )
            record(cr, actor, f"conflict: {exc}")
        except FlagappError as exc:
            cr.detail = f"could not apply: {exc}"
            record(cr, actor, f"apply failed: {exc}")
        else:
            cr.status = ChangeRequest.STATUS_APPLIED
            cr.before = json.loads(json.dumps(before, default=str))
            cr.applied_at = timezone.now()
            cr.detail = ""
            record(cr, actor, "applied")
            announce_event(cr, "applied", actor)
        cr.save()
    return cr


def pending() -> Any:
    """Pending requests, oldest first (what reviewers work through)."""
    return (
        ChangeRequest.objects.filter(status=ChangeRequest.STATUS_PENDING)
        .select_related("author", "flag", "environment")
        .order_by("created_at", "id")
    )
