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
from .types import Context, ErrorCode, FlagTable, Reason, Resolution, Ruleset

__all__ = ["bind", "changed_flag_keys", "evaluate", "evaluate_all"]

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
        res = compiled(context)
        hit = ruleset.bound.get(id(res))
        return hit if hit is not None else bind(ruleset, res)
    except Exception as exc:  # never raise into the caller's request
        logger.exception("flagapp: evaluating %r failed", flag_key)
        return _error(flag_key, ErrorCode.GENERAL, f"{type(exc).__name__}: {exc}")


def bind(ruleset: Ruleset, res: Resolution) -> Resolution:
    """``res`` — a pre-built resolution returned by a compiled flag of ``ruleset`` — as
    ``ruleset`` serves it: its metadata plus ``snapshotVersion``.

    Why here and not in the compiled flag: a compiled flag is shared by every version it is
    unchanged in (an apply costs what changed), so it cannot carry the version. The bound
    copy is made the first time a resolution is returned from a ruleset and kept in
    ``ruleset.bound`` (keyed by ``id``: the pre-built resolutions and metadata mappings live as
    long as the ruleset's flags), so an evaluation allocates nothing after the first. Two
    threads binding the same resolution at once build equal copies; either may be kept.
    """
    bound = ruleset.bound
    meta = bound.get(id(res.metadata))
    if meta is None:
        meta = MappingProxyType({**res.metadata, "snapshotVersion": ruleset.version})
        bound[id(res.metadata)] = meta
    out = Resolution(
        res.flag_key,
        res.value,
        res.variant,
        res.reason,
        res.use_default,
        res.error_code,
        res.error_message,
        res.rule_id,
        meta,
    )
    bound[id(res)] = out
    return out


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
    build = new.build
    if (
        build is not None
        and build.base is not None
        and build.base() is old
        and isinstance(build.flag_digests, FlagTable)
        and build.flag_digests.flags is new.flags
        and build.segments is new.segments
    ):
        return build.changed  # worked out when ``new`` was built from ``old``
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
