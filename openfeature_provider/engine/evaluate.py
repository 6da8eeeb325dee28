"""Evaluate flags of a parsed ruleset: ``evaluate``, ``evaluate_all``, ``changed_flag_keys``.

No I/O and no globals: a ``Ruleset`` is immutable, so any number of threads evaluate it at
once, and a new snapshot is swapped in by reference. Evaluation never raises; every failure is
a ``Resolution`` with ``use_default=True`` and an error code, so a bug in a rule can at worst
serve the calling code's own default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .graph import dependents, flag_segment_refs, prerequisite_graph, segment_graph
from .types import Context, ErrorCode, Reason, Resolution, Ruleset

__all__ = ["changed_flag_keys", "evaluate", "evaluate_all"]

logger = logging.getLogger("flagapp.engine")

_EMPTY: Context = MappingProxyType({})


def _error(
    flag_key: Any, code: str, message: str, metadata: Mapping[str, Any] | None = None
) -> Resolution:
    return Resolution(
        flag_key=flag_key,
        value=None,
        variant=None,
        reason=Reason.ERROR,
        use_default=True,
        error_code=code,
        error_message=message,
        metadata=metadata if metadata is not None else _EMPTY,
    )


def evaluate(
    ruleset: Ruleset, flag_key: str, context: Context | None, kind: str | None = None
) -> Resolution:
    """Resolve ``flag_key`` for ``context``.

    ``kind`` is the type the caller asked for; ``None`` skips the check. The order of checks
    is the format's contract: FLAG_NOT_FOUND, then TYPE_MISMATCH (before DISABLED, so a
    wrongly typed call is reported even while the flag is off), then the flag itself.
    """
    try:
        flag = ruleset.flags.get(flag_key)
        if flag is None:
            return _error(flag_key, ErrorCode.FLAG_NOT_FOUND, f"flag {flag_key!r} not found")
        if kind is not None and kind != flag.kind:
            return _error(
                flag_key,
                ErrorCode.TYPE_MISMATCH,
                f"flag {flag_key!r} is {flag.kind}, requested {kind}",
                _flag_metadata(ruleset, flag.metadata),
            )
        if context is None:
            context = _EMPTY
        elif type(context) is not dict and not isinstance(context, Mapping):
            return _error(
                flag_key,
                ErrorCode.INVALID_CONTEXT,
                f"context must be a mapping, got {type(context).__name__}",
            )
        compiled = flag.compiled
        if compiled is None:
            return _error(flag_key, ErrorCode.GENERAL, "flag was not compiled by parse_ruleset")
        return compiled(context)
    except Exception as exc:  # never raise into the caller's request
        logger.exception("flagapp: evaluating %r failed", flag_key)
        return _error(flag_key, ErrorCode.GENERAL, f"{type(exc).__name__}: {exc}")


def _flag_metadata(ruleset: Ruleset, metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType({**metadata, "snapshotVersion": ruleset.version})


def evaluate_all(ruleset: Ruleset, context: Context | None) -> dict[str, Resolution]:
    """Every flag of the ruleset for one context (bulk OFREP, ``--flag``-less CLI runs)."""
    return {key: evaluate(ruleset, key, context) for key in ruleset.flags}


def changed_flag_keys(old: Ruleset | None, new: Ruleset) -> frozenset[str]:
    """Keys whose evaluation may differ between two snapshots.

    A flag changed if it was added, removed or edited, if a segment it uses (directly or via
    another segment) changed, or if one of its prerequisites changed. The provider reports
    these in PROVIDER_CONFIGURATION_CHANGED events, so it must not miss any.
    """
    if old is None:
        return frozenset(new.flags)
    changed: set[str] = set(old.flags.keys() ^ new.flags.keys())
    seg_changed = dependents(
        (
            key
            for key in old.segments.keys() | new.segments.keys()
            if old.segments.get(key) != new.segments.get(key)
        ),
        segment_graph(new.segments),
    )
    for key, flag in new.flags.items():
        if key not in changed and (
            old.flags.get(key) != flag or not seg_changed.isdisjoint(flag_segment_refs(flag))
        ):
            changed.add(key)
    return frozenset(dependents(changed, prerequisite_graph(new.flags)))
