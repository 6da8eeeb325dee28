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

from flagapp.documents import state_dict
from flagapp.exceptions import (
    ApprovalRequired,
    ChangeNotPermitted,
    DuplicateChangeRequest,
    FlagappError,
    FlagValidationError,
    VersionConflict,
)
from flagapp.policy import GrantedApproval

if TYPE_CHECKING:
    from flagapp.governance.blast_radius import BlastRadius
    from flagapp.models import ChangeRequest, Environment, Flag

__all__ = [
    "APPROVE_PERMISSION",
    "apply",
    "approve",
    "can_review",
    "check_can_propose",
    "check_not_stale",
    "describe_operation",
    "diff",
    "pending",
    "preview",
    "propose",
    "propose_from",
    "radius_since_published",
    "reject",
    "withdraw",
]

APPROVE_PERMISSION = "flagapp.approve_changerequest"

#: The permission an author needs to propose each operation: what a direct edit needs.
_OPERATION_PERMISSIONS: Mapping[str, str] = {
    "update_flag_state": "flagapp.change_flagstate",
    "set_flag_enabled": "flagapp.change_flagstate",
    "update_flag": "flagapp.change_flag",
    "archive_flag": "flagapp.change_flag",
    "unarchive_flag": "flagapp.change_flag",
    "set_variants": "flagapp.change_flag",
    "delete_flag": "flagapp.delete_flag",
    "update_environment": "flagapp.change_environment",
    "update_segment": "flagapp.change_segment",
}

#: What each operation is called on screen (``update_flag_state`` is the services' name).
OPERATION_LABELS: Mapping[str, str] = {
    "update_flag_state": "targeting change",
    "set_flag_enabled": "turn on or off",
    "update_flag": "flag settings change",
    "archive_flag": "archive",
    "unarchive_flag": "unarchive",
    "set_variants": "variants change",
    "delete_flag": "deletion",
    "update_environment": "environment change",
    "update_segment": "segment change",
}


def describe_operation(kind: str, payload: Mapping[str, Any] | None = None) -> str:
    """A request's operation in words ("turn on", "targeting change"), for people."""
    params = (payload or {}).get("params") or {}
    if kind == "set_flag_enabled":
        enabled = params.get("enabled", (payload or {}).get("enabled"))
        if isinstance(enabled, bool):
            return "turn on" if enabled else "turn off"
    # set_flag_enabled (the on/off toggle) proposes through update_flag_state
    if (
        kind == "update_flag_state"
        and set(params) - {"expected_version"} == {"enabled"}
        and isinstance(params["enabled"], bool)
    ):
        return "turn on" if params["enabled"] else "turn off"
    return OPERATION_LABELS.get(kind, kind.replace("_", " "))


# ---------------------------------------------------------------------------------------
# preview (dry run + blast radius)


class _Rollback(Exception):
    """Raised to roll a dry run back."""


def _objects(change: Mapping[str, Any]) -> tuple[Flag | None, Environment | None]:
    from flagapp.models import Environment, Flag

    flag = Flag.objects.filter(key=change.get("flag")).first() if change.get("flag") else None
    env_key = change.get("environment")
    environment = Environment.objects.filter(key=env_key).first() if env_key else None
    if change.get("flag") and flag is None:
        raise FlagValidationError({"flag": [f"no flag {change.get('flag')!r}"]})
    if env_key and environment is None:
        raise FlagValidationError({"environment": [f"no environment {env_key!r}"]})
    return flag, environment


def preview(change: Mapping[str, Any], *, contexts: Any = None) -> BlastRadius | None:
    """Dry-run ``change`` and return its blast radius (None when it names no flag: a segment
    or environment change is validated the same way, but not measured).

    The change is applied through the services inside a transaction that is then rolled
    back, and the environment is compiled in between: the "after" ruleset is exactly what
    the services would publish, for every kind of operation, and a change the services
    would refuse raises the same ``FlagValidationError`` / ``VersionConflict`` here. The
    rollback also discards the publish-on-commit callbacks. ``contexts`` overrides the
    sample (``flagapp.sampling.preview_sample``) -- a flag-level change (no environment)
    is previewed in every environment and the counts are added up.
    """
    from flagapp import services
    from flagapp.documents import compile_environment
    from flagapp.models import Environment

    flag, environment = _objects(change)
    environments = [environment] if environment else list(Environment.objects.all())
    before = {env.pk: compile_environment(env) for env in environments} if flag else {}
    after: dict[int, dict[str, Any]] = {}
    try:
        with transaction.atomic():
            services.apply_change(
                change, actor=None, reason="blast-radius preview", change_request=GrantedApproval()
            )
            if flag is not None:
                after = {env.pk: compile_environment(env) for env in environments}
            raise _Rollback
    except _Rollback:
        pass
    if flag is None:  # validated, but not about one flag (a segment, an environment)
        return None
    return _measure(flag.key, environments, before, after, contexts)


def radius_since_published(
    flag: Flag, environments: Any = None, *, contexts: Any = None
) -> BlastRadius | None:
    """The blast radius of what the current transaction changed: the latest *published*
    snapshot of each environment (what is served now) against the environment compiled
    inside this transaction (with the unpublished change). The admin uses it to show a
    direct change's blast radius before the user confirms it. None when the flag's
    outcome cannot change (no environment)."""
    from flagapp.documents import compile_environment
    from flagapp.models import Environment
    from flagapp.publishing import latest

    envs = list(environments) if environments is not None else list(Environment.objects.all())
    if not envs:
        return None
    before: dict[int, Any] = {}
    for env in envs:
        snap = latest(env.key)
        before[env.pk] = snap.data if snap is not None else None
    after = {env.pk: compile_environment(env) for env in envs}
    return _measure(flag.key, envs, before, after, contexts)


def _measure(
    flag_key: str,
    environments: list[Environment],
    before: Mapping[int, Any],
    after: Mapping[int, Any],
    contexts: Any,
) -> BlastRadius:
    """Compare per environment; several environments are added up (``environment="*"``)."""
    from flagapp.conf import settings
    from flagapp.governance.blast_radius import BlastRadius, compare
    from flagapp.sampling import preview_sample

    limit = int(settings.BLAST_RADIUS_SAMPLE)
    examples = int(settings.BLAST_RADIUS_EXAMPLES)
    results = []
    for env in environments:
        if contexts is not None:
            sample = list(contexts)
            provenance: dict[str, Any] = {"size": len(sample), "sources": {"given": len(sample)}}
        else:
            trusted = preview_sample(env.key, limit)
            sample, provenance = trusted.contexts, trusted.as_dict()
        radius = compare(before[env.pk], after[env.pk], flag_key, sample, max_examples=examples)
        radius.sample = provenance
        results.append(radius)
    if len(results) == 1:
        return results[0]
    # Only the environments the change touches count: dividing by the contexts of an
    # environment whose flags did not change halved the share (50% where the
    # environment's own page said 100%).
    touched = [
        (env, radius)
        for env, radius in zip(environments, results, strict=True)
        if _flag_entries(before[env.pk], radius.flags) != _flag_entries(after[env.pk], radius.flags)
    ] or list(zip(environments, results, strict=True))
    total = BlastRadius(flag_key=flag_key, environment="*", sampled=0, changed=0)
    sources: dict[str, int] = {}
    # A user sampled in two environments is one user: counted and shown once.
    users: set[str] = set()
    changed_users: set[str] = set()
    shown: set[Any] = set()
    for env, radius in touched:
        total.sampled += radius.sampled - len(radius.sampled_keys & users)
        total.changed += radius.changed - len(radius.changed_keys & changed_users)
        users |= radius.sampled_keys
        changed_users |= radius.changed_keys
        for label, n in radius.transitions.items():
            key = f"{env.key}: {label}"
            total.transitions[key] = total.transitions.get(key, 0) + n
        for example in radius.examples:
            who = example.get("targetingKey")
            if len(total.examples) < examples and (who is None or who not in shown):
                shown.add(who)
                total.examples.append({**example, "environment": env.key})
        total.flags = list(dict.fromkeys(total.flags + radius.flags))
        for name, n in (radius.sample.get("sources") or {}).items():
            sources[f"{env.key}/{name}"] = n
    total.sample = {
        "size": total.sampled,
        "sources": sources,
        "restricted_to": results[0].sample.get("restricted_to") if results else None,
        "duplicates": sum(int(r.sample.get("duplicates", 0)) for _, r in touched),
        "capped": sum(int(r.sample.get("capped", 0)) for _, r in touched),
        "environments": [env.key for env, _ in touched],
    }
    total.sampled_keys, total.changed_keys = users, changed_users
    return total


def _flag_entries(doc: Any, keys: list[str]) -> Any:
    """The entries of ``keys`` (and the segments) in a compiled document, for telling
    whether a change touched an environment; None when nothing is published."""
    if doc is None:
        return None
    flags = doc.get("flags") or {}
    return ({k: flags.get(k) for k in keys}, doc.get("segments"))


# ---------------------------------------------------------------------------------------
# the lifecycle


def _history(cr: ChangeRequest, user: Any, reason: str) -> None:
    cr._history_user = user  # type: ignore[attr-defined]
    cr._change_reason = reason  # type: ignore[attr-defined]


def _announce(cr: ChangeRequest, event: str, actor: Any) -> None:
    """``change_request_changed`` after COMMIT (webhooks, Slack): a request whose
    transaction rolls back never notifies."""
    from flagapp.notifications.outbox import announce
    from flagapp.signals import change_request_changed

    announce(change_request_changed, type(cr), change_request=cr, event=event, actor=actor)


def _require_user(user: Any) -> None:
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


def _check_reviewer(cr: ChangeRequest, reviewer: Any) -> None:
    _require_user(reviewer)
    if reviewer.pk == cr.author_id:
        raise ChangeNotPermitted("the author of a change request cannot review it")
    if not reviewer.has_perm(APPROVE_PERMISSION):
        raise ChangeNotPermitted(f"{reviewer} lacks the permission {APPROVE_PERMISSION}")


def check_can_propose(
    user: Any, change: Mapping[str, Any]
) -> tuple[Flag | None, Environment | None]:
    """Raise unless ``user`` could make ``change`` directly but for the approval: the same
    permissions as the direct edit (plus the protected-environment one where it applies).
    Returns the flag and environment the change names."""
    _require_user(user)
    operation = change.get("operation")
    perm = _OPERATION_PERMISSIONS.get(str(operation))
    if perm is None:
        raise FlagValidationError({"operation": [f"cannot propose operation {operation!r}"]})
    flag, environment = _objects(change)
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
    from flagapp.models import ChangeRequest

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
    effect = _effect(candidate)
    same = ChangeRequest.objects.filter(
        status=ChangeRequest.STATUS_PENDING,
        flag_key=str(change.get("flag") or ""),
        environment_key=str(change.get("environment") or ""),
        kind=str(operation),
    ).order_by("id")
    for existing in same:
        if _effect(existing) == effect:
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
    _history(cr, author, f"proposed: {text}")
    with transaction.atomic():
        cr.save()
        _announce(cr, "proposed", author)
    return cr


def _normal(value: Any) -> Any:
    """A value with empty optional parts dropped (a rule's "" description, a None id): the
    admin and the API spell the same change differently."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v not in ("", None)}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _effect(cr: ChangeRequest) -> tuple[Any, str]:
    """What a request would change (fields whose proposed value differs from the stored
    one) and the version it was made against: equal effects are the same proposal."""
    import json

    fields = {
        row["field"]: _normal(row["after"])
        for row in diff(cr)["fields"]
        if _normal(row["before"]) != _normal(row["after"])
    }
    return cr.base_version, json.dumps(fields, sort_keys=True, default=str)


def propose_from(
    exc: ApprovalRequired, *, author: Any, reason: str, **kwargs: Any
) -> ChangeRequest:
    """The usual call site: ``except ApprovalRequired as exc: propose_from(exc, ...)``."""
    return propose(exc.change, author=author, reason=reason, **kwargs)


def _locked(cr: ChangeRequest) -> ChangeRequest:
    from flagapp.models import ChangeRequest

    # of=("self",): PostgreSQL cannot lock the nullable side (reviewer) of an outer join.
    return (
        ChangeRequest.objects.select_for_update(of=("self",))
        .select_related("author", "reviewer")
        .get(pk=cr.pk)
    )


def approve(cr: ChangeRequest, *, reviewer: Any, comment: str = "") -> ChangeRequest:
    """Approve a pending request and apply it. Returns the request, now ``applied``,
    ``conflicted`` (stale base version) or still ``approved`` (``detail`` says why the
    apply failed)."""
    from flagapp.models import ChangeRequest

    with transaction.atomic():
        cr = _locked(cr)
        _check_reviewer(cr, reviewer)
        if cr.status != ChangeRequest.STATUS_PENDING:
            raise ChangeNotPermitted(f"change request #{cr.pk} is {cr.status}, not pending")
        check_not_stale(cr)
        cr.status = ChangeRequest.STATUS_APPROVED
        cr.reviewer = reviewer
        cr.reviewed_at = timezone.now()
        cr.review_comment = (comment or "").strip()
        _history(
            cr, reviewer, f"approved: {cr.review_comment}" if cr.review_comment else "approved"
        )
        cr.save()
        _announce(cr, "approved", reviewer)
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


def reject(cr: ChangeRequest, *, reviewer: Any, comment: str) -> ChangeRequest:
    """Reject a pending request; a comment (why) is required."""
    from flagapp.models import ChangeRequest

    text = (comment or "").strip()
    if not text:
        raise FlagValidationError({"comment": ["Say why the change is rejected."]})
    with transaction.atomic():
        cr = _locked(cr)
        _check_reviewer(cr, reviewer)
        if cr.status != ChangeRequest.STATUS_PENDING:
            raise ChangeNotPermitted(f"change request #{cr.pk} is {cr.status}, not pending")
        cr.status = ChangeRequest.STATUS_REJECTED
        cr.reviewer = reviewer
        cr.reviewed_at = timezone.now()
        cr.review_comment = text
        _history(cr, reviewer, f"rejected: {text}")
        cr.save()
        _announce(cr, "rejected", reviewer)
    return cr


def withdraw(
    cr: ChangeRequest, *, actor: Any, reason: str = "", flag_archived: bool = False
) -> ChangeRequest:
    """Withdraw a pending (or approved, not applied) request: nothing is applied, ever.

    The author may withdraw their own request. ``flag_archived=True`` is the archive
    path (the archiving user, who needs the flag change permission, withdraws every open
    request on the flag so no approval applies to an archived flag later).
    """
    from flagapp.models import ChangeRequest

    if not (flag_archived and actor is None):  # None: the system archiving the flag
        _require_user(actor)
    with transaction.atomic():
        cr = _locked(cr)
        if cr.status not in (ChangeRequest.STATUS_PENDING, ChangeRequest.STATUS_APPROVED):
            raise ChangeNotPermitted(f"change request #{cr.pk} is {cr.status}, not open")
        if flag_archived:
            if actor is not None and not actor.has_perm("flagapp.change_flag"):
                raise ChangeNotPermitted(f"{actor} lacks the permission flagapp.change_flag")
        elif actor.pk != cr.author_id:
            raise ChangeNotPermitted("only the author can withdraw a change request")
        cr.status = ChangeRequest.STATUS_WITHDRAWN
        cr.detail = (reason or "").strip()
        _history(cr, actor, f"withdrawn: {cr.detail}" if cr.detail else "withdrawn")
        cr.save()
    return cr


def open_requests(flag: Flag) -> Any:
    """Pending and approved-but-unapplied requests of ``flag``."""
    from flagapp.models import ChangeRequest

    return ChangeRequest.objects.filter(
        flag=flag, status__in=(ChangeRequest.STATUS_PENDING, ChangeRequest.STATUS_APPROVED)
    ).order_by("created_at", "id")


def apply(cr: ChangeRequest, *, actor: Any) -> ChangeRequest:
    """Apply an approved request (again). ``actor`` must be its reviewer, its author or
    another user with the approve permission. The write is attributed to the author."""
    from flagapp import services
    from flagapp.models import ChangeRequest

    _require_user(actor)
    with transaction.atomic():
        cr = _locked(cr)
        if cr.status != ChangeRequest.STATUS_APPROVED:
            raise ChangeNotPermitted(f"change request #{cr.pk} is {cr.status}, not approved")
        if actor.pk not in (cr.author_id, cr.reviewer_id) and not actor.has_perm(
            APPROVE_PERMISSION
        ):
            raise ChangeNotPermitted(f"{actor} may not apply change request #{cr.pk}")
        reviewer = cr.reviewer.get_username() if cr.reviewer else "?"
        reason = f"{cr.reason} [change request #{cr.pk}, approved by {reviewer}]"
        before, _ = _current_values(cr)
        try:
            with transaction.atomic():
                services.apply_change(cr.change, actor=cr.author, reason=reason, change_request=cr)
        except VersionConflict as exc:
            cr.status = ChangeRequest.STATUS_CONFLICTED
            cr.detail = (
                f"{exc}. The change was made against version {cr.base_version}; "
                "nothing was applied -- propose it again on the current version."
            )
            _history(cr, actor, f"conflict: {exc}")
        except FlagappError as exc:
            cr.detail = f"could not apply: {exc}"
            _history(cr, actor, f"apply failed: {exc}")
        else:
            cr.status = ChangeRequest.STATUS_APPLIED
            cr.before = json.loads(json.dumps(before, default=str))
            cr.applied_at = timezone.now()
            cr.detail = ""
            _history(cr, actor, "applied")
            _announce(cr, "applied", actor)
        cr.save()
    return cr


def pending() -> Any:
    """Pending requests, oldest first (what reviewers work through)."""
    from flagapp.models import ChangeRequest

    return (
        ChangeRequest.objects.filter(status=ChangeRequest.STATUS_PENDING)
        .select_related("author", "flag", "environment")
        .order_by("created_at", "id")
    )


# ---------------------------------------------------------------------------------------
# diff


def _current_values(cr: ChangeRequest) -> tuple[dict[str, Any], int | None]:
    """The stored values of the fields the request changes, and the current version."""
    from flagapp.models import Environment, FlagState, Segment

    values: dict[str, Any] = {}
    if cr.kind == "update_segment":
        segment = Segment.objects.filter(key=cr.payload.get("segment")).first()
        if segment is None:
            return values, None
        for name in cr.payload.get("params") or {}:
            if hasattr(segment, name) and name != "expected_version":
                values[name] = getattr(segment, name)
        return values, segment.version
    if cr.kind == "update_environment":
        env = Environment.objects.filter(key=cr.environment_key).first()
        if env is None:
            return values, None
        for name in cr.payload.get("params") or {}:
            if hasattr(env, name) and name != "expected_version":
                values[name] = getattr(env, name)
        return values, env.version
    if cr.flag is None:
        return values, None
    if cr.kind in ("update_flag_state", "set_flag_enabled") and cr.environment is not None:
        state = (
            FlagState.objects.filter(flag=cr.flag, environment=cr.environment)
            .prefetch_related("rules")
            .first()
        )
        if state is None:
            return values, None
        values = state_dict(state)
        return values, state.version
    if cr.kind == "set_variants":
        variants = list(cr.flag.variants.values("key", "value", "description"))
        return {"variants": variants}, cr.flag.version
    if cr.kind in ("archive_flag", "unarchive_flag", "delete_flag"):
        return {"archived": cr.flag.archived}, cr.flag.version
    for name in cr.payload.get("params") or {}:
        if hasattr(cr.flag, name) and name != "expected_version":
            value = getattr(cr.flag, name)
            values[name] = (
                value.isoformat()
                if hasattr(value, "isoformat")
                else (value.name if hasattr(value, "user_set") else value)
            )
    return values, cr.flag.version


def diff(cr: ChangeRequest) -> dict[str, Any]:
    """``{"fields": [{"field", "before", "after"}], "base_version", "current_version",
    "stale"}``: what the request would change, compared with what is stored *now*."""
    params = dict(cr.payload.get("params") or {})
    params.pop("expected_version", None)
    current, version = _current_values(cr)
    if cr.status == cr.STATUS_APPLIED and cr.before is not None:
        # What was stored when it was applied: an applied request keeps its before/after.
        current = dict(cr.before)
    if cr.kind == "set_flag_enabled" and "enabled" not in params:
        params["enabled"] = cr.payload.get("enabled")
    if cr.kind in ("archive_flag", "unarchive_flag", "delete_flag"):
        params = {"archived": cr.kind != "unarchive_flag"}
    fields = [
        {"field": name, "before": current.get(name), "after": value}
        for name, value in params.items()
    ]
    # An applied request moved the version itself; a rejected one no longer matters.
    stale = (
        cr.status in (cr.STATUS_PENDING, cr.STATUS_APPROVED, cr.STATUS_CONFLICTED)
        and cr.base_version is not None
        and version is not None
        and version != cr.base_version
    )
    return {
        "operation": cr.kind,
        "fields": fields,
        "base_version": cr.base_version,
        "current_version": version,
        "stale": stale,
    }
