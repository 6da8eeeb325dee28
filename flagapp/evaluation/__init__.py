"""In-process flag evaluation: ``flagapp.evaluate`` and the per-process snapshot cache.

A small package, one concern per module (docs/internals.md has the map):

- :mod:`.cache` — which ruleset this process serves per environment, and how it learns of a
  newer one (a shared-cache read, or one cheap query with a per-process cache, per
  ``FLAGAPP["CACHE_CHECK_INTERVAL"]``); listeners; the ``snapshot_published`` receiver.
- :mod:`.api` — ``evaluate`` / ``get_value`` / ``flag_is_active`` and their async twins.
- :mod:`.context` — request → evaluation context (``FLAGAPP["CONTEXT_BUILDER"]``), also
  importable as ``flagapp.context``.
- :mod:`.overrides` — test overrides (``flagapp.testutils.override_flag``).
- :mod:`.details` — ``EvaluationDetails`` and ``kind_of``.

Usage statistics have one buffer, :mod:`flagapp.sampling`'s (``sampling.note`` on the hot
path). Every public name is importable from ``flagapp.evaluation``.
"""

from __future__ import annotations

from .api import (
    aevaluate,
    aflag_is_active,
    aget_value,
    evaluate,
    flag_is_active,
    flush_usage,
    get_value,
)
from .cache import (
    apply_delta,
    attribute_in_use,
    cache_is_shared,
    clear_cache,
    connect,
    current_ruleset,
    default_environment,
    document_text,
    expire,
    get_ruleset,
    install,
    is_warm,
    published_version,
    subscribe,
    unsubscribe,
)
from .details import EvaluationDetails, kind_of
from .overrides import clear_overrides, overrides, restore_override, set_override

__all__ = [
    "EvaluationDetails",
    "aevaluate",
    "aflag_is_active",
    "aget_value",
    "apply_delta",
    "attribute_in_use",
    "cache_is_shared",
    "clear_cache",
    "clear_overrides",
    "connect",
    "current_ruleset",
    "default_environment",
    "document_text",
    "evaluate",
    "expire",
    "flag_is_active",
    "flush_usage",
    "get_ruleset",
    "get_value",
    "install",
    "is_warm",
    "kind_of",
    "overrides",
    "published_version",
    "restore_override",
    "set_override",
    "subscribe",
    "unsubscribe",
]
