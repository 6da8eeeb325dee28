"""Event types and their JSON payloads (pure: model instances in, JSON-ready dicts out).

Every delivered body has the same envelope, so one receiver can route on ``type``::

    {"id": "<uuid>", "type": "flag.changed", "created_at": "<ISO 8601>",
     "environments": ["production"], "data": {...}}

``data`` per type is built here and documented with an example per type in
docs/observability.md ("Webhooks and notifications"). The payloads carry keys, names and
the reason given for a change, never secrets, SDK keys or evaluation contexts.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any

__all__ = [
    "EVENT_TYPES",
    "change_request_data",
    "flag_changed_data",
    "flag_expiring_data",
    "flag_summary",
    "jsonable",
    "rollout_data",
    "stale_data",
]

FLAG_CHANGED = "flag.changed"
CR_PROPOSED = "change_request.proposed"
CR_APPROVED = "change_request.approved"
CR_REJECTED = "change_request.rejected"
CR_APPLIED = "change_request.applied"
ROLLOUT_STARTED = "rollout.started"
ROLLOUT_ADVANCED = "rollout.advanced"
ROLLOUT_COMPLETED = "rollout.completed"
ROLLOUT_PAUSED = "rollout.paused"
ROLLOUT_RESUMED = "rollout.resumed"
ROLLOUT_ROLLED_BACK = "rollout.rolled_back"
FLAG_EXPIRING = "flag.expiring"
FLAG_STALE = "flag.stale"

#: Every event type, with what it means (the admin's choices, the docs' table).
EVENT_TYPES: dict[str, str] = {
    FLAG_CHANGED: "a flag, its variants or its state (enabled, rules) in an environment changed",
    CR_PROPOSED: "a change request was proposed",
    CR_APPROVED: "a change request was approved",
    CR_REJECTED: "a change request was rejected",
    CR_APPLIED: "an approved change request was applied",
    ROLLOUT_STARTED: "a progressive rollout started",
    ROLLOUT_ADVANCED: "a rollout moved to its next step",
    ROLLOUT_COMPLETED: "a rollout reached 100%",
    ROLLOUT_PAUSED: "a rollout was paused",
    ROLLOUT_RESUMED: "a paused rollout was resumed",
    ROLLOUT_ROLLED_BACK: "a rollout was rolled back (by hand or by a guardrail)",
    FLAG_EXPIRING: "a flag's expiry date is near or past (expiry reminder)",
    FLAG_STALE: "the stale-flag report lists flags to clean up",
}

#: RolloutTransition.action -> event type.
ROLLOUT_ACTIONS: dict[str, str] = {
    "start": ROLLOUT_STARTED,
    "advance": ROLLOUT_ADVANCED,
    "complete": ROLLOUT_COMPLETED,
    "pause": ROLLOUT_PAUSED,
    "resume": ROLLOUT_RESUMED,
    "rollback": ROLLOUT_ROLLED_BACK,
}


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of what the services hand over (dates, groups, decimals)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    name = getattr(value, "name", None)  # a Group (owner), an Environment
    return str(name if isinstance(name, str) else value)


def actor_name(actor: Any) -> str | None:
    """The username of a user actor; None for the system (tasks, commands)."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None
    return str(actor.get_username())


def flag_summary(flag: Any) -> dict[str, Any]:
    owner = getattr(flag, "owner", None)
    return {
        "key": flag.key,
        "name": flag.name,
        "kind": flag.kind,
        "type": flag.flag_type,
        "owner": owner.name if owner is not None else None,
        "expires_on": flag.expires_on.isoformat() if flag.expires_on else None,
    }


def flag_changed_data(
    flag: Any,
    *,
    operation: str,
    environment_keys: list[str],
    actor: Any,
    reason: str,
    changes: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "flag": flag_summary(flag),
        "operation": operation,
        "environments": list(environment_keys),
        "actor": actor_name(actor),
        "reason": reason,
        "changes": jsonable(changes),
    }


def change_request_data(cr: Any, *, event: str, actor: Any) -> dict[str, Any]:
    return {
        "change_request": {
            "id": cr.pk,
            "status": cr.status,
            "operation": cr.kind,
            "flag": cr.flag_key or None,
            "environment": cr.environment_key or None,
            "author": actor_name(cr.author),
            "reviewer": actor_name(cr.reviewer) if cr.reviewer_id else None,
            "reason": cr.reason,
            "review_comment": cr.review_comment,
            "detail": cr.detail,
            "change": jsonable(cr.payload),
        },
        "event": event,
        "actor": actor_name(actor),
    }


def rollout_data(plan: Any, transition: Any) -> dict[str, Any]:
    return {
        "rollout": {
            "id": plan.pk,
            "flag": plan.flag.key,
            "environment": plan.environment.key,
            "treatment_variant": plan.treatment_variant,
            "control_variant": plan.control_variant,
            "state": transition.to_state,
            "metric_source": plan.metric_source,
        },
        "action": transition.action,
        "from_state": transition.from_state,
        "to_state": transition.to_state,
        "from_percent": transition.from_bps / 100,
        "to_percent": transition.to_bps / 100,
        "reason": transition.reason,
        "automatic": bool(transition.automatic),
        "actor": actor_name(transition.actor) if transition.actor_id else None,
        "at": transition.at.isoformat(),
        "details": jsonable(transition.details or {}),
    }


def flag_expiring_data(flag: Any, *, stage: str, label: str) -> dict[str, Any]:
    return {"flag": flag_summary(flag), "stage": stage, "label": label}


def stale_data(report: Any) -> dict[str, Any]:
    data: dict[str, Any] = jsonable(report.as_dict())
    return data
