"""Flag configuration in words, for people: "on 10% · off 90%", "plan in pro, team".

Why one module: the history timeline, the audit log, the flag overview and the playground
all describe what a flag serves; a second wording would drift from the first (and a flag
manager would read the same rule two ways). Pure functions over format-v1 dicts, no ORM.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .syntax import format_conditions

__all__ = [
    "CHANGE",
    "conditions_text",
    "percent",
    "prerequisite_text",
    "rule_text",
    "serve_text",
    "value_text",
]

#: django-simple-history's ``history_type`` in words.
CHANGE = {"+": "created", "~": "changed", "-": "deleted"}

# --- words ----------------------------------------------------------------------------------


def percent(weight: int, total: int) -> str:
    """``2500`` of ``10000`` -> ``"25%"``; two decimals at most (``33.33%``)."""
    if total <= 0:
        return "0%"
    text = f"{weight * 100 / total:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def serve_text(serve: Mapping[str, Any] | None) -> str:
    """A serve in words: ``on``, ``on 10% · off 90%`` (plus ``by plan``, salt, hash)."""
    if not serve:
        return "the caller's default"
    if serve.get("variant") is not None:
        return str(serve["variant"])
    rollout = serve.get("rollout") or {}
    weights = [
        (str(w.get("variant")), int(w.get("weight") or 0)) for w in rollout.get("weights", [])
    ]
    total = sum(w for _, w in weights)
    text = " · ".join(f"{v} {percent(w, total)}" for v, w in weights)
    if rollout.get("bucket_by") not in (None, "targetingKey"):
        text += f" (by {rollout['bucket_by']})"
    if rollout.get("salt") is not None:
        text += f" (salt {rollout['salt']})"
    if rollout.get("hash") is not None:
        text += f" (hash {rollout['hash']})"
    return text


def conditions_text(conditions: Sequence[Mapping[str, Any]] | None) -> str:
    if not conditions:
        return "everyone"
    return " and ".join(format_conditions([c]) for c in conditions)


def prerequisite_text(pre: Mapping[str, Any]) -> str:
    return f"{pre.get('flag')} is {' or '.join(str(v) for v in pre.get('variants') or [])}"


def value_text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def rule_text(rule: Mapping[str, Any]) -> str:
    text = f"{conditions_text(rule.get('when'))} → {serve_text(rule.get('serve'))}"
    if rule.get("description"):
        text += f" (“{rule['description']}”)"
    return text
