"""Ruleset deltas (docs/protocol.md, "Deltas"): the changes between two format-v1 documents.

A delta names its base (version and etag) and carries, for the new version, the flags and
segments that were added or changed (whole entries), the keys that were removed, and the
counts of the result. Applying it to the base document gives the new document, equal to
the one a full fetch returns (key order aside: both are sorted by key here and on the
server, and nothing depends on the order). Pure functions, no I/O.

``parse_delta(delta, previous=ruleset)`` applies a delta to a compiled ruleset directly (no
document needed): only the entries the delta carries are validated and compiled, with what
depends on them (incremental.py); everything else is shared with ``previous``. That is what the
provider does with a 226 answer or an inline stream delta; ``apply_delta`` (documents) is for
holders of the document, such as the server.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from typing import Any

from .exceptions import DeltaMismatch, ParseError
from .types import Ruleset

__all__ = ["DELTA_KEYS", "DeltaMismatch", "apply_delta", "make_delta", "parse_delta"]

#: The top-level keys of a delta document (anything else is refused).
DELTA_KEYS = frozenset(
    {
        "delta",
        "format",
        "environment",
        "base",
        "version",
        "etag",
        "flags",
        "segments",
        "removedFlags",
        "removedSegments",
        "counts",
    }
)


def make_delta(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The delta from document ``base`` to document ``new`` (entries compared by value)."""
    return delta_from_changes(
        base,
        new,
        changed_flags=_changed(base.get("flags") or {}, new.get("flags") or {}),
        changed_segments=_changed(base.get("segments") or {}, new.get("segments") or {}),
    )


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    # repr, not ==: 1, 1.0 and true are equal in Python but not in JSON
    return [k for k, v in new.items() if k not in old or repr(old[k]) != repr(v)]


def delta_from_changes(
    base: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    changed_flags: list[str],
    changed_segments: list[str],
) -> dict[str, Any]:
    """A delta from ``base`` to ``new`` given which keys of ``new`` changed or were added
    (the server knows them from its per-entry digests)."""
    new_flags: Mapping[str, Any] = new.get("flags") or {}
    new_segments: Mapping[str, Any] = new.get("segments") or {}
    return {
        "delta": 1,
        "format": new.get("format"),
        "environment": new.get("environment"),
        "base": {"version": base.get("version"), "etag": base.get("etag")},
        "version": new.get("version"),
        "etag": new.get("etag"),
        "flags": {k: new_flags[k] for k in sorted(changed_flags)},
        "segments": {k: new_segments[k] for k in sorted(changed_segments)},
        "removedFlags": sorted(set(base.get("flags") or {}) - set(new_flags)),
        "removedSegments": sorted(set(base.get("segments") or {}) - set(new_segments)),
        "counts": {"flags": len(new_flags), "segments": len(new_segments)},
    }


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ParseError(where, "must be an object")
    return value


def _keys(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise ParseError(where, "must be a list of strings")
    return value


def apply_delta(base: Mapping[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    """The document ``delta`` leads to from the document ``base``.

    Raises :class:`DeltaMismatch` when ``delta`` names another base etag or its counts do
    not match the result, and ``ParseError`` when it is not a delta at all; the new document
    itself is validated by ``parse_ruleset`` as any other.
    """
    delta = _mapping(delta, "$")
    unknown = set(delta) - DELTA_KEYS
    if unknown:
        raise ParseError(f"$.{sorted(unknown)[0]}", "unknown field in a delta")
    if delta.get("delta") != 1:
        raise ParseError("$.delta", "not a delta of a version this engine reads (1)")
    named = _mapping(delta.get("base"), "$.base").get("etag")
    if not named or named != base.get("etag"):
        raise DeltaMismatch("$.base.etag", f"delta from {named!r}, held {base.get('etag')!r}")
    if delta.get("environment") != base.get("environment"):
        raise DeltaMismatch("$.environment", "delta of another environment")
    flags = dict(_mapping(base.get("flags") or {}, "base.flags"))
    segments = dict(_mapping(base.get("segments") or {}, "base.segments"))
    for key in _keys(delta.get("removedFlags", []), "$.removedFlags"):
        flags.pop(key, None)
    for key in _keys(delta.get("removedSegments", []), "$.removedSegments"):
        segments.pop(key, None)
    flags.update(_mapping(delta.get("flags", {}), "$.flags"))
    segments.update(_mapping(delta.get("segments", {}), "$.segments"))
    counts = _mapping(delta.get("counts", {}), "$.counts")
    if counts.get("flags", len(flags)) != len(flags) or counts.get(
        "segments", len(segments)
    ) != len(segments):
        raise DeltaMismatch("$.counts", "the result does not have the announced counts")
    doc = dict(base)
    doc["format"] = delta.get("format", base.get("format"))
    doc["version"] = delta.get("version")
    doc["etag"] = delta.get("etag")
    doc["flags"] = {k: flags[k] for k in sorted(flags)}
    doc["segments"] = {k: segments[k] for k in sorted(segments)}
    return doc


def parse_delta(
    delta: Mapping[str, Any] | str | bytes,
    *,
    previous: Ruleset,
    freeze: bool = False,
    keep_raw: bool | None = None,
) -> Ruleset:
    """The ruleset ``delta`` leads to from ``previous`` (a ruleset this process parsed).

    Equal to ``parse_ruleset(apply_delta(previous.raw, delta))`` — same flags, segments,
    evaluations and ``changed_flag_keys`` — at the cost of what the delta carries. Flags keep
    ``previous``'s order, added ones at the end. Raises ``DeltaMismatch`` when the delta names
    another base or its counts differ from the result (fetch the full document), and
    ``ParseError`` when the result would not be valid (its message names the problem; a full
    parse may name another, earlier one).

    ``keep_raw``: keep a document as ``raw`` (``apply_delta`` of ``previous.raw``; a copy of
    the flag table); by default when ``previous`` kept one. ``freeze``: as ``parse_ruleset``.
    """
    from .incremental import Changes, rebuild
    from .ruleset import NO_DOCUMENT, _text
    from .shapes import _object
    from .swap import loads
    from .validate import _header

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if isinstance(delta, str | bytes | bytearray):
            try:
                delta = loads(delta)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise ParseError("$", f"invalid JSON: {exc}") from None
        delta = _mapping(delta, "$")
        unknown = set(delta) - DELTA_KEYS
        if unknown:
            raise ParseError(f"$.{sorted(unknown)[0]}", "unknown field in a delta")
        if delta.get("delta") != 1:
            raise ParseError("$.delta", "not a delta of a version this engine reads (1)")
        named = _mapping(delta.get("base"), "$.base").get("etag")
        if not named or named != previous.etag:
            raise DeltaMismatch("$.base.etag", f"delta from {named!r}, held {previous.etag!r}")
        if delta.get("environment") != previous.environment:
            raise DeltaMismatch("$.environment", "delta of another environment")
        if previous.build is None:
            raise DeltaMismatch("$", "the held ruleset was not parsed (no build state)")
        header = _header(
            {
                "format": delta.get("format", previous.format),
                "environment": previous.environment,
                "version": delta.get("version"),
                "etag": delta.get("etag"),
            }
        )
        flags = _object(delta.get("flags", {}), "$.flags")
        segments = _object(delta.get("segments", {}), "$.segments")
        removed_flags = _keys(delta.get("removedFlags", []), "$.removedFlags")
        removed_segments = _keys(delta.get("removedSegments", []), "$.removedSegments")
        counts = _mapping(delta.get("counts", {}), "$.counts")
        n_flags = _count(previous.flags, flags, removed_flags)
        n_segments = _count(previous.segments, segments, removed_segments)
        if (
            counts.get("flags", n_flags) != n_flags
            or counts.get("segments", n_segments) != n_segments
        ):
            raise DeltaMismatch("$.counts", "the result does not have the announced counts")
        if keep_raw is None:
            keep_raw = bool(previous.raw)
        raw = apply_delta(previous.raw, delta) if keep_raw and previous.raw else NO_DOCUMENT
        changes = Changes.from_entries(flags, removed_flags, segments, removed_segments, _text)
        ruleset = rebuild(previous, header, changes, raw=raw)
        if freeze:
            gc.freeze()
        return ruleset
    finally:
        if was_enabled:
            gc.enable()


def _count(held: Mapping[str, Any], updated: Mapping[str, Any], removed: list[str]) -> int:
    """How many entries ``held`` has after ``removed`` then ``updated`` (as apply_delta)."""
    gone = sum(1 for k in set(removed) if k in held and k not in updated)
    added = sum(1 for k in updated if k not in held)
    return len(held) - gone + added
