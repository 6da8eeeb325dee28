"""Test overrides: force a flag's value in this process (``flagapp.testutils.override_flag``).

An override wins over every ruleset and environment. Listeners of the cache (the OpenFeature
Django source) are told when overrides change, so the rulesets they deliver follow.
"""

from __future__ import annotations

from typing import Any

from openfeature_provider.engine import ErrorCode, Reason

from .cache import _lock, notify_all
from .details import EvaluationDetails, kind_of

__all__ = ["override_details", "overrides", "restore_override", "set_override"]

#: flag key -> value. Read without a lock (a dict lookup is atomic); written under ``_lock``.
_overrides: dict[str, Any] = {}


def set_override(key: str, value: Any) -> tuple[bool, Any]:
    """Force ``key`` to ``value`` in this process; returns what to pass to ``restore_override``."""
    with _lock:
        previous = (key in _overrides, _overrides.get(key))
        _overrides[key] = value
    notify_all()
    return previous


def restore_override(key: str, previous: tuple[bool, Any]) -> None:
    with _lock:
        had, value = previous
        if had:
            _overrides[key] = value
        else:
            _overrides.pop(key, None)
    notify_all()


def overrides() -> dict[str, Any]:
    """A copy of the active overrides."""
    return dict(_overrides)


def clear_overrides() -> None:
    """Drop every override (tests' teardown)."""
    with _lock:
        _overrides.clear()
    notify_all()


def override_details(key: str, default: Any, kind: str | None) -> EvaluationDetails:
    """The details ``evaluate`` returns for an overridden ``key``."""
    value = _overrides[key]
    value_kind = kind_of(value)
    # The value's Python type is the flag's kind, checked exactly as the engine checks a
    # real flag's kind: an integer flag asked for a float is TYPE_MISMATCH there too.
    if kind is not None and value_kind is not None and value_kind != kind:
        return EvaluationDetails(
            key,
            default,
            None,
            Reason.ERROR,
            ErrorCode.TYPE_MISMATCH,
            f"override of {key!r} is {value_kind}, {kind} was requested",
            {"override": True},
        )
    return EvaluationDetails(key, value, "override", Reason.STATIC, None, None, {"override": True})
