"""flagapp: feature management for Django.

Importing ``flagapp`` is cheap and needs no configured Django settings: the public names are
re-exported lazily (PEP 562), so ``flagapp.evaluate`` imports the evaluation module only when
first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "EvaluationDetails",
    "aevaluate",
    "aflag_is_active",
    "aget_value",
    "atrack",
    "evaluate",
    "flag_is_active",
    "flush_usage",
    "get_value",
    "track",
]

_LAZY: dict[str, tuple[str, str]] = {
    "evaluate": ("flagapp.evaluation", "evaluate"),
    "EvaluationDetails": ("flagapp.evaluation", "EvaluationDetails"),
    "aevaluate": ("flagapp.evaluation", "aevaluate"),
    "aflag_is_active": ("flagapp.evaluation", "aflag_is_active"),
    "aget_value": ("flagapp.evaluation", "aget_value"),
    "flag_is_active": ("flagapp.evaluation", "flag_is_active"),
    "get_value": ("flagapp.evaluation", "get_value"),
    "flush_usage": ("flagapp.evaluation", "flush_usage"),
    "track": ("flagapp.tracking", "track"),
    "atrack": ("flagapp.tracking", "atrack"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'flagapp' has no attribute {name!r}") from None
    value = getattr(import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
