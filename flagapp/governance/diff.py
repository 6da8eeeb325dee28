"""What a change request would change: its fields before and after, and whether it is stale.

:func:`diff` compares the proposed values with what is stored *now* (or, for an applied
request, with what was stored when it was applied: ``ChangeRequest.before``), and says
whether the object moved on since the request was made (``stale``: its version is no longer
the request's ``base_version``). The review pages, the API, the approve guard
(``change_requests.check_not_stale``) and the duplicate-proposal check (:func:`effect`)
read it.
"""

from __future__ import annotations

import json
from typing import Any

from flagapp.documents import state_dict
from flagapp.models import ChangeRequest, Environment, FlagState, Segment

__all__ = ["current_values", "diff", "effect"]


def current_values(cr: ChangeRequest) -> tuple[dict[str, Any], int | None]:
    """The stored values of the fields the request changes, and the current version."""
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
    current, version = current_values(cr)
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


def _normal(value: Any) -> Any:
    """A value with empty optional parts dropped (a rule's "" description, a None id): the
    admin and the API spell the same change differently."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v not in ("", None)}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def effect(cr: ChangeRequest) -> tuple[Any, str]:
    """What a request would change (fields whose proposed value differs from the stored
    one) and the version it was made against: equal effects are the same proposal."""
    fields = {
        row["field"]: _normal(row["after"])
        for row in diff(cr)["fields"]
        if _normal(row["before"]) != _normal(row["after"])
    }
    return cr.base_version, json.dumps(fields, sort_keys=True, default=str)
