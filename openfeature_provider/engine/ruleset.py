"""Parse a format-v1 ruleset document into a compiled ``Ruleset``: ``parse_ruleset``.

The pieces are validated by validate.py (each error names its JSON path) and compiled by
compiler.py, so evaluation does no parsing, lookups of the table, or conversions per call.
A parse from scratch validates and compiles everything; a parse given the ruleset it replaces
(``previous=``) compares each entry's digest with the one kept from that ruleset's build and
hands only the entries that differ to incremental.py, which builds the new ruleset from the
previous one (structural sharing). Both give the same ruleset, errors included.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from hashlib import blake2b
from types import MappingProxyType
from typing import Any

from . import validate
from .compiler import compile_conditions, compile_flag, compile_segments
from .exceptions import ParseError
from .graph import flag_segment_refs, prerequisite_graph, topological_order
from .incremental import Changes, rebuild, with_compiled
from .shapes import _at, _keys, _object
from .swap import loads
from .types import BuildState, Flag, FlagTable, Ruleset, Segment
from .validate import _check_prerequisites, _check_segment_cycles, _header

__all__ = ["parse_ruleset"]

#: What a ruleset parsed with ``keep_raw=False`` holds as ``raw``.
NO_DOCUMENT: Mapping[str, Any] = MappingProxyType({})


def parse_ruleset(
    doc: Mapping[str, Any] | str | bytes,
    *,
    previous: Ruleset | None = None,
    freeze: bool = False,
    keep_raw: bool = True,
) -> Ruleset:
    """Validate ``doc`` (a mapping, or JSON text/bytes) and return a compiled ``Ruleset``.

    Raises ``ParseError`` for any problem; never returns a partially valid ruleset.

    ``previous``: a ruleset this process parsed before (the one being replaced). Flags and
    segments whose document entry is unchanged — and that depend on nothing that changed (a
    segment they name, a prerequisite) — are taken from it as they are, compiled function
    included: nothing compiled depends on the version (``snapshotVersion`` is added when a
    resolution is first returned, evaluate.py). The result is the same as a full parse in
    every respect, errors included (tests/openfeature_provider/engine/test_incremental.py).

    ``freeze=True`` is for a ruleset that will be served for a while (a provider's, the Django
    cache's): the parse ends with ``gc.freeze()`` before the collector resumes, so no
    collection ever walks the new ruleset's objects (engine/swap.py explains the trade-off).

    ``keep_raw=False``: do not keep the decoded document as ``Ruleset.raw`` (about a third of
    a ruleset's memory). The provider parses so; ``engine.document.ruleset_document`` gives an
    equivalent document back, and deltas apply to the compiled form (``parse_delta``).
    """
    # Parsing allocates many small objects and no cycles: the cyclic collector would
    # rescan the growing heap again and again (half the time at 10,000 flags), so pause it.
    # Only a caller that saw it enabled re-enables it, so concurrent parses compose.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        ruleset = _parse(doc, previous.build if previous is not None else None, previous, keep_raw)
        if freeze:
            gc.freeze()
        return ruleset
    finally:
        if was_enabled:
            gc.enable()


def _text(entry: Any) -> bytes | None:
    """The comparison key of a document entry (None: not comparable, parse it).

    A 128-bit BLAKE2b digest of the entry's ``repr``: kept for every flag and segment between
    parses, so a digest (49 bytes) instead of the text (about 330 bytes a flag; 3.6 MiB at
    10,000 flags) is what a provider holds.
    """
    try:
        text = repr(entry)
    except RecursionError:  # hostile nesting: the full validation reports it properly
        return None
    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _parse(
    doc: Mapping[str, Any] | str | bytes,
    base: BuildState | None,
    previous: Ruleset | None,
    keep_raw: bool = True,
) -> Ruleset:
    if isinstance(doc, str | bytes | bytearray):
        try:
            doc = loads(doc)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError("$", f"invalid JSON: {exc}") from None
        except RecursionError:
            raise ParseError("$", "invalid JSON: nested too deep to decode") from None
    root = _object(doc, "$")
    _keys(root, "$", validate._TOP_KEYS, validate._TOP_REQUIRED)
    header = _header(root)
    segments_doc = _object(root.get("segments", {}), "$.segments")
    flags_doc = _object(root["flags"], "$.flags")
    raw = root if keep_raw else NO_DOCUMENT
    if previous is not None and base is not None:
        changes = Changes.from_document(flags_doc, segments_doc, base, previous, _text)
        try:
            return rebuild(
                previous, header, changes, raw=raw, order=flags_doc, segment_order=segments_doc
            )
        except ParseError:
            pass  # report exactly what a parse from scratch reports (first error in order)
    return _scratch(header, flags_doc, segments_doc, raw)


def _scratch(
    header: tuple[int, str, int, str],
    flags_doc: Mapping[str, Any],
    segments_doc: Mapping[str, Any],
    raw: Mapping[str, Any],
) -> Ruleset:
    fmt, environment, version, etag = header
    segment_digests: dict[str, bytes] = {}
    segments: dict[str, Segment] = {}
    for key, value in segments_doc.items():
        text = _text(value)
        segment = validate._segment(key, value, _at("$.segments", key), segments_doc)
        # keyed by the parse's own copy of the key (intern.py: kept strings pin no document)
        segments[segment.key] = segment
        if text is not None:
            segment_digests[segment.key] = text
    _check_segment_cycles(segments)

    flag_digests: dict[str, bytes | None] = {}
    flags: dict[str, Flag] = {}
    for key, value in flags_doc.items():
        flag = validate._flag(key, value, _at("$.flags", key), segments)
        flag_digests[flag.key] = _text(value)
        flags[flag.key] = flag
    _check_prerequisites(flags)

    segment_tests = compile_segments(segments)
    compiled: dict[str, Any] = {}
    conditions: dict[str, tuple[tuple[Any, ...], ...]] = {}
    prerequisite_users: dict[str, set[str]] = {}
    segment_users: dict[str, set[str]] = {}
    # prerequisites first: a compiled flag holds its prerequisites' functions (no registry
    # lookup at call time, hence no reference cycle)
    for key in topological_order(prerequisite_graph(flags)):
        flag = flags[key]
        plans = compile_conditions(flag, segment_tests)
        conditions[key] = plans
        compiled[key] = compile_flag(flag, segment_tests, compiled, plans)
        for pre in flag.prerequisites:
            prerequisite_users.setdefault(pre.flag, set()).add(key)
        if flag.rules:
            for seg in flag_segment_refs(flag):
                segment_users.setdefault(seg, set()).add(key)
    final = MappingProxyType(
        {
            key: with_compiled(flag, compiled[key], flag_digests[key], conditions[key])
            for key, flag in flags.items()
        }
    )
    return Ruleset(
        environment=environment,
        version=version,
        etag=etag,
        flags=final,
        segments=MappingProxyType(segments),
        format=fmt,
        raw=raw,
        build=BuildState(
            flag_digests=FlagTable(final, "digest"),
            segment_digests=segment_digests,
            segment_tests=segment_tests,
            conditions=FlagTable(final, "plans"),
            prerequisite_users={k: frozenset(v) for k, v in prerequisite_users.items()},
            segment_users={k: frozenset(v) for k, v in segment_users.items()},
        ),
    )


# kept for callers of the old private name
_with_compiled = with_compiled
