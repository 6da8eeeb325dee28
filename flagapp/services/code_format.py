"""The flags-as-code document: its format, the writer and the shape check.

``export_config`` writes the whole configuration (or some environments' states) as one
JSON document (docs/flags-as-code.md), deterministic so that exports diff cleanly in version
control; ``shape_errors`` lists every shape problem of a document (types, required and
unknown keys) before :func:`flagapp.services.code.import_config` applies anything. Both
follow one format, defined here::

    {"flagapp": 1,
     "environments": [{"key": "production", "name": "Production", "protected": true,
                       "order": 2}],
     "segments": {"beta": {"name": "Beta", "description": "", "include": ["u1"],
                           "exclude": [], "conditions": [...]}},
     "flags": {"checkout.new-flow": {
         "name": "...", "description": "", "kind": "boolean", "type": "release",
         "owner": "payments", "risk": "low", "expires_on": "2026-12-31", "tags": [],
         "archived": false,
         "variants": [{"key": "on", "value": true, "description": ""}, ...],
         "environments": {"production": {"enabled": true, "fallthrough": {"variant": "off"},
                                         "prerequisites": [], "rules": [
             {"id": "r1", "description": "", "when": [...], "serve": {"variant": "on"}}]}}}}}

A state is written by ``flagapp.documents.state_dict``, the one ORM -> document mapper.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flagapp.documents import state_dict
from flagapp.exceptions import FlagValidationError
from flagapp.models import Environment, Flag, Segment

__all__ = ["FORMAT", "STATE_KEYS", "export_config", "shape_errors"]

#: The format version, the document's ``"flagapp"`` key.
FORMAT = 1

_FLAG_KEYS = {
    "name",
    "description",
    "kind",
    "type",
    "owner",
    "risk",
    "expires_on",
    "tags",
    "archived",
    "variants",
    "environments",
}
STATE_KEYS = {"enabled", "fallthrough", "prerequisites", "rules"}
_SEGMENT_KEYS = {"name", "description", "include", "exclude", "conditions"}
_ENV_KEYS = {"key", "name", "protected", "order"}


# --- export ------------------------------------------------------------------------------------


def _flag_doc(flag: Flag, env_keys: set[str] | None) -> dict[str, Any]:
    states = {
        s.environment.key: state_dict(s)
        for s in flag.states.all()
        if env_keys is None or s.environment.key in env_keys
    }
    return {
        "name": flag.name,
        "description": flag.description,
        "kind": flag.kind,
        "type": flag.flag_type,
        "owner": flag.owner.name,
        "risk": flag.risk,
        "expires_on": flag.expires_on.isoformat() if flag.expires_on else None,
        "tags": list(flag.tags or []),
        "archived": flag.archived,
        "variants": [
            {"key": v.key, "value": v.value, "description": v.description}
            for v in sorted(flag.variants.all(), key=lambda v: (v.order, v.key))
        ],
        "environments": dict(sorted(states.items())),
    }


def export_config(environments: Iterable[str] | None = None) -> dict[str, Any]:
    """The whole configuration (or only the named environments' states) as a document.
    Deterministic (sorted) so that exports diff cleanly in version control."""
    env_keys = set(environments) if environments is not None else None
    envs = Environment.objects.order_by("order", "key")
    if env_keys is not None:
        missing = env_keys - set(envs.values_list("key", flat=True))
        if missing:
            raise FlagValidationError(
                {"environment": [f"unknown environment(s): {', '.join(sorted(missing))}"]}
            )
        envs = envs.filter(key__in=env_keys)
    flags = (
        Flag.objects.select_related("owner")
        .prefetch_related("variants", "states__environment", "states__rules")
        .order_by("key")
    )
    return {
        "flagapp": FORMAT,
        "environments": [
            {"key": e.key, "name": e.name, "protected": e.protected, "order": e.order} for e in envs
        ],
        "segments": {
            s.key: {
                "name": s.name,
                "description": s.description,
                "include": list(s.include),
                "exclude": list(s.exclude),
                "conditions": list(s.conditions),
            }
            for s in Segment.objects.order_by("key")
        },
        "flags": {f.key: _flag_doc(f, env_keys) for f in flags},
    }


# --- import: shape check -------------------------------------------------------------------------


def shape_errors(doc: object) -> list[str]:
    """Every shape problem of the document (types, required and unknown keys)."""
    errors: list[str] = []
    if not isinstance(doc, Mapping):
        return ["$: expected a JSON object"]
    if doc.get("flagapp") != FORMAT:
        errors.append(f"$.flagapp: expected {FORMAT} (the format version)")
    unknown = set(doc) - {"flagapp", "environments", "segments", "flags"}
    if unknown:
        errors.append(f"$: unknown key(s) {', '.join(sorted(unknown))}")
    envs = doc.get("environments", [])
    if not isinstance(envs, list):
        errors.append("$.environments: expected a list")
    else:
        for i, env in enumerate(envs):
            if not isinstance(env, Mapping) or not isinstance(env.get("key"), str):
                errors.append(f"$.environments[{i}]: expected an object with a 'key'")
            elif set(env) - _ENV_KEYS:
                errors.append(
                    f"$.environments[{i}]: unknown key(s) {', '.join(sorted(set(env) - _ENV_KEYS))}"
                )
    segments = doc.get("segments", {})
    if not isinstance(segments, Mapping):
        errors.append("$.segments: expected an object")
    else:
        for key, seg in segments.items():
            path = f"$.segments[{key!r}]"
            if not isinstance(seg, Mapping):
                errors.append(f"{path}: expected an object")
                continue
            if set(seg) - _SEGMENT_KEYS:
                errors.append(
                    f"{path}: unknown key(s) {', '.join(sorted(set(seg) - _SEGMENT_KEYS))}"
                )
            for name in ("include", "exclude", "conditions"):
                if name in seg and not isinstance(seg[name], list):
                    errors.append(f"{path}.{name}: expected a list")
    flags = doc.get("flags", {})
    if not isinstance(flags, Mapping):
        errors.append("$.flags: expected an object")
        return errors
    for key, flag in flags.items():
        path = f"$.flags[{key!r}]"
        if not isinstance(flag, Mapping):
            errors.append(f"{path}: expected an object")
            continue
        if set(flag) - _FLAG_KEYS:
            errors.append(f"{path}: unknown key(s) {', '.join(sorted(set(flag) - _FLAG_KEYS))}")
        for required in ("name", "owner", "kind"):
            if required not in flag:
                errors.append(f"{path}: missing {required!r}")
        if "variants" in flag and not isinstance(flag["variants"], list | Mapping):
            errors.append(f"{path}.variants: expected a list")
        states = flag.get("environments", {})
        if not isinstance(states, Mapping):
            errors.append(f"{path}.environments: expected an object")
            continue
        for env_key, state in states.items():
            spath = f"{path}.environments[{env_key!r}]"
            if not isinstance(state, Mapping):
                errors.append(f"{spath}: expected an object")
            elif set(state) - STATE_KEYS:
                errors.append(
                    f"{spath}: unknown key(s) {', '.join(sorted(set(state) - STATE_KEYS))}"
                )
    return errors
