"""The operations a change request can carry: who may propose each, and its name in words.

Pure (no ORM, no settings): the ``ChangeRequest`` model's ``__str__``, the admin's filters
and the lifecycle in :mod:`flagapp.governance.change_requests` read these, and a module the
models import must not import the models (or anything that does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APPROVE_PERMISSION",
    "OPERATION_LABELS",
    "OPERATION_PERMISSIONS",
    "describe_operation",
]

APPROVE_PERMISSION = "flagapp.approve_changerequest"

#: The permission an author needs to propose each operation: what a direct edit needs.
OPERATION_PERMISSIONS: Mapping[str, str] = {
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
