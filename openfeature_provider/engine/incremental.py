"""Build a ruleset from the previous one plus what changed (issue 17: a change costs what
changed, not the size of the environment).

Both ways in end here: ``parse_ruleset(doc, previous=...)`` (a whole document, compared entry
by entry with the previous build's digests) and ``parse_delta(delta, previous=...)`` (a delta
of docs/protocol.md, whose entries are the changes). ``rebuild`` then

* validates the changed entries only, and checks what a change can break elsewhere through
  the reverse edges kept in ``BuildState`` (a removed segment or prerequisite still named, a
  prerequisite's variant gone, a prerequisite cycle or chain through a changed flag);
* compiles the changed flags and what depends on them — flags naming a segment that changed
  (directly or through other segments) and, transitively, flags having a recompiled flag as
  prerequisite (a compiled flag holds its prerequisites' functions) — in prerequisite order;
* shares everything else with the previous ruleset: the same ``Flag`` objects, compiled
  functions included (nothing compiled carries the version, see evaluate.bind), the same
  segment mapping when no segment changed. The per-change cost is then a few C-level copies
  of the flag and digest tables (tens of microseconds at 10,000 flags) plus the changed part;
* records which keys' evaluation may differ (``BuildState.changed``), so the provider's
  ``flags_changed`` is not a comparison of every flag.

A problem is a ``ParseError``; ``parse_ruleset`` then parses the document from scratch to
report exactly the error a full parse reports (the first in document order).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from . import validate
from .compiler import compile_conditions, compile_flag, compile_segments
from .exceptions import ParseError
from .graph import (
    dependents,
    flag_segment_refs,
    segment_graph,
    segment_refs,
    topological_order,
)
from .shapes import _at
from .types import BuildState, Flag, FlagTable, Ruleset, Segment
from .validate import _check_prerequisite_chains, _check_segment_cycles

__all__ = ["Changes", "rebuild", "with_compiled"]

_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Changes:
    """Entries added or changed (document form), keys removed, and the digests of the
    changed entries (``all_*_digests``: every entry's, when the whole document was read)."""

    flags: Mapping[str, Any]
    removed_flags: Collection[str]
    segments: Mapping[str, Any]
    removed_segments: Collection[str]
    flag_digests: Mapping[str, bytes | None]
    segment_digests: Mapping[str, bytes | None]
    all_flag_digests: dict[str, bytes] | None = None
    all_segment_digests: dict[str, bytes] | None = None

    @classmethod
    def from_document(
        cls,
        flags_doc: Mapping[str, Any],
        segments_doc: Mapping[str, Any],
        base: BuildState,
        previous: Ruleset,
        text: Callable[[Any], bytes | None],
    ) -> Changes:
        """The entries of a whole document whose digest differs from ``base``'s."""
        flags, flag_digests, all_flags = _diff(flags_doc, base.flag_digests, text)
        segments, segment_digests, all_segments = _diff(segments_doc, base.segment_digests, text)
        return cls(
            flags=flags,
            removed_flags=previous.flags.keys() - flags_doc.keys(),
            segments=segments,
            removed_segments=previous.segments.keys() - segments_doc.keys(),
            flag_digests=flag_digests,
            segment_digests=segment_digests,
            all_flag_digests=all_flags,
            all_segment_digests=all_segments,
        )

    @classmethod
    def from_entries(
        cls,
        flags: Mapping[str, Any],
        removed_flags: Collection[str],
        segments: Mapping[str, Any],
        removed_segments: Collection[str],
        text: Callable[[Any], bytes | None],
    ) -> Changes:
        """Changes given as such (a delta): only their own digests are taken."""
        return cls(
            flags=flags,
            removed_flags=removed_flags,
            segments=segments,
            removed_segments=removed_segments,
            flag_digests={k: text(v) for k, v in flags.items()},
            segment_digests={k: text(v) for k, v in segments.items()},
        )


def _diff(
    entries: Mapping[str, Any],
    old: Mapping[str, bytes],
    text: Callable[[Any], bytes | None],
) -> tuple[dict[str, Any], dict[str, bytes | None], dict[str, bytes]]:
    changed: dict[str, Any] = {}
    changed_digests: dict[str, bytes | None] = {}
    every: dict[str, bytes] = {}
    for key, value in entries.items():
        digest = text(value)
        if digest is None or old.get(key) != digest:
            changed[key] = value
            changed_digests[key] = digest
        if digest is not None:
            every[key] = digest
    return changed, changed_digests, every


def rebuild(
    previous: Ruleset,
    header: tuple[int, str, int, str],
    changes: Changes,
    *,
    raw: Mapping[str, Any],
    order: Iterable[str] | None = None,
    segment_order: Iterable[str] | None = None,
) -> Ruleset:
    """The ruleset ``previous`` becomes with ``changes`` (``header``: format, environment,
    version, etag of the new one; ``order``, ``segment_order``: the keys in document order,
    when known).

    Raises ParseError when the result would not be a valid ruleset.
    """
    base = previous.build
    if base is None:
        raise ParseError("$", "the previous ruleset was not parsed (no build state)")
    fmt, environment, version, etag = header
    old_flags, old_segments = previous.flags, previous.segments

    # -- segments ---------------------------------------------------------------------------
    seg_removed = {k for k in changes.removed_segments if k in old_segments} - set(changes.segments)
    segments_map: Mapping[str, Segment] = old_segments
    segment_tests = base.segment_tests
    all_segment_keys: AbstractSet[str] = old_segments.keys()
    keys_changed = False
    affected: set[str] = set()  # segments whose compiled test must be rebuilt
    semantic: set[str] = set()  # segments whose membership may differ (for ``changed``)
    seg_digests: Mapping[str, bytes] = base.segment_digests
    if changes.segments or seg_removed:
        segments = _copy(old_segments)
        for key in seg_removed:
            del segments[key]
        all_segment_keys = segments.keys() | changes.segments.keys()
        keys_changed = bool(seg_removed) or not changes.segments.keys() <= old_segments.keys()
        for key, value in changes.segments.items():
            old_segment = old_segments.get(key)
            digest = changes.segment_digests.get(key)
            if (
                old_segment is not None
                and digest is not None
                and base.segment_digests.get(key) == digest
                and (not keys_changed or segment_refs(old_segment.when) <= all_segment_keys)
            ):
                continue  # the same entry sent again
            parsed = validate._segment(key, value, _at("$.segments", key), all_segment_keys)
            segments[parsed.key] = parsed  # the parse's copy of the key (intern.py)
        if keys_changed:
            for key, segment in segments.items():
                if not segment_refs(segment.when) <= all_segment_keys:
                    raise ParseError(_at("$.segments", key), "names an undefined segment")
        _check_segment_cycles(segments)
        replaced = {
            k
            for k in changes.segments.keys() | seg_removed
            if segments.get(k) is not old_segments.get(k)
        }
        if replaced:
            graph = segment_graph(segments)
            affected = dependents(replaced, graph)
            semantic = dependents(
                {k for k in replaced if segments.get(k) != old_segments.get(k)}, graph
            )
            segment_tests = compile_segments(
                segments, {k: t for k, t in base.segment_tests.items() if k not in affected}
            )
            segments_map = MappingProxyType(segments)
            digests = _digests(
                base.segment_digests,
                changes.all_segment_digests,
                changes.segment_digests,
                seg_removed,
            )
            # keyed by the kept segment keys, not the document's (intern.py)
            seg_digests = {k: digests[k] for k in segments if k in digests}

    # -- flags: validation --------------------------------------------------------------------
    removed = {k for k in changes.removed_flags if k in old_flags} - set(changes.flags)
    flags: dict[str, Flag] = _copy(old_flags)
    for key in removed:
        del flags[key]
    validated: dict[str, Flag] = {}
    for key, value in changes.flags.items():
        old_flag = old_flags.get(key)
        digest = changes.flag_digests.get(key)
        if (
            old_flag is not None
            and digest is not None
            and base.flag_digests.get(key) == digest
            and (not keys_changed or flag_segment_refs(old_flag) <= all_segment_keys)
        ):
            continue  # the same entry sent again
        flag = validate._flag(key, value, _at("$.flags", key), all_segment_keys)
        validated[flag.key] = flag  # the parse's copy of the key (intern.py)
        flags[flag.key] = flag
    for segment in seg_removed:
        for user in base.segment_users.get(segment, _NONE):
            if user in flags and user not in validated:
                raise ParseError(_at("$.flags", user), f"undefined segment {segment!r}")

    # -- reverse edges of the new ruleset ------------------------------------------------------
    touched = validated.keys() | removed
    prerequisite_users = _reverse(
        base.prerequisite_users,
        touched,
        old_flags,
        validated,
        lambda f: {p.flag for p in f.prerequisites},
    )
    segment_users = _reverse(
        base.segment_users,
        touched,
        old_flags,
        validated,
        lambda f: flag_segment_refs(f) if f.rules else set(),
    )
    _check_prerequisites(flags, validated, removed, old_flags, base.prerequisite_users)
    _check_prerequisite_graph(flags, validated, old_flags, prerequisite_users)

    # -- what to compile, in prerequisite order ------------------------------------------------
    seg_touched: set[str] = set()
    for segment in affected:
        seg_touched.update(u for u in segment_users.get(segment, _NONE) if u in flags)
    recompile = _closure(validated.keys() | seg_touched, prerequisite_users)
    if recompile:
        subgraph = {
            k: [p.flag for p in flags[k].prerequisites if p.flag in recompile] for k in recompile
        }
        done: dict[str, Any] = {}
        for key in topological_order(subgraph):
            flag = flags[key]
            plans = None if key in validated or key in seg_touched else flag.plans
            if plans is None:
                plans = compile_conditions(flag, segment_tests)
            registry: dict[str, Any] = {
                p.flag: done[p.flag] if p.flag in done else flags[p.flag].compiled
                for p in flag.prerequisites
            }
            fn = compile_flag(flag, segment_tests, registry, plans)
            done[key] = fn
            flags[key] = with_compiled(flag, fn, changes.flag_digests.get(key), plans)
    # a whole document's key order wins (an entry removed and added back moves to the end)
    reordered = False
    if order is not None:
        keys = list(order)
        if keys != list(flags):
            flags = {flags[key].key: flags[key] for key in keys}
            reordered = True
    if segment_order is not None:
        keys = list(segment_order)
        if keys != list(segments_map):
            segments_map = MappingProxyType({segments_map[k].key: segments_map[k] for k in keys})

    # -- what may evaluate differently (flags_changed) -----------------------------------------
    changed = {k for k, f in validated.items() if old_flags.get(k) != f} | removed
    for segment in semantic:
        changed.update(u for u in segment_users.get(segment, _NONE) if u in flags)
    changed = _closure(changed, prerequisite_users)

    same_flags = not recompile and not removed and not reordered
    flags_map = old_flags if same_flags else MappingProxyType(flags)
    return Ruleset(
        environment=environment,
        version=version,
        etag=etag,
        flags=flags_map,
        segments=segments_map,
        format=fmt,
        raw=raw,
        build=BuildState(
            flag_digests=FlagTable(flags_map, "digest"),
            segment_digests=seg_digests,
            segment_tests=segment_tests,
            conditions=FlagTable(flags_map, "plans"),
            prerequisite_users=prerequisite_users,
            segment_users=segment_users,
            base=weakref.ref(previous),
            changed=frozenset(changed),
            segments=segments_map,
        ),
    )


def with_compiled(
    flag: Flag,
    fn: Any,
    digest: bytes | None = None,
    plans: tuple[tuple[Any, ...], ...] | None = None,
) -> Flag:
    """``replace(flag, compiled=fn, digest=..., plans=...)`` without dataclasses.replace's
    keyword machinery (``digest``/``plans`` None: the flag's own)."""
    return Flag(
        flag.key,
        flag.kind,
        flag.enabled,
        flag.variants,
        flag.prerequisites,
        flag.rules,
        flag.fallthrough,
        flag.metadata,
        fn,
        flag.digest if digest is None else digest,
        flag.plans if plans is None else plans,
    )


def _copy(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A dict copy; a mapping proxy's ``copy()`` is its dict's, a C-level clone (``dict()``
    of a proxy goes key by key: ten times slower at 10,000 flags)."""
    copy = getattr(mapping, "copy", None)
    if copy is not None:
        out = copy()
        if type(out) is dict:
            return out
    return dict(mapping)


def _digests(
    old: Mapping[str, bytes],
    every: dict[str, bytes] | None,
    changed: Mapping[str, bytes | None],
    removed: Collection[str],
) -> Mapping[str, bytes]:
    if every is not None:
        return every
    if not changed and not removed:
        return old
    out = dict(old)
    for key in removed:
        out.pop(key, None)
    for key, digest in changed.items():
        if digest is None:
            out.pop(key, None)
        else:
            out[key] = digest
    return out


def _reverse(
    old: Mapping[str, frozenset[str]],
    touched: Collection[str],
    old_flags: Mapping[str, Flag],
    new_flags: Mapping[str, Flag],
    targets: Callable[[Flag], set[str]],
) -> Mapping[str, frozenset[str]]:
    """The reverse-edge table ``old`` after the flags ``touched`` changed (or were removed)."""
    if not touched:
        return old
    out: dict[str, frozenset[str]] | None = None
    for key in touched:
        before = old_flags.get(key)
        after = new_flags.get(key)
        was = targets(before) if before is not None else set()
        now = targets(after) if after is not None else set()
        if was == now:
            continue
        if out is None:
            out = dict(old)
        for target in was - now:
            users = out.get(target, _NONE) - {key}
            if users:
                out[target] = users
            else:
                out.pop(target, None)
        for target in now - was:
            out[target] = out.get(target, _NONE) | {key}
    return old if out is None else out


def _closure(start: Iterable[str], users: Mapping[str, frozenset[str]]) -> set[str]:
    """``start`` plus every flag that has one of them as a prerequisite, transitively."""
    out = set(start)
    todo = list(out)
    while todo:
        for user in users.get(todo.pop(), _NONE):
            if user not in out:
                out.add(user)
                todo.append(user)
    return out


def _check_prerequisites(
    flags: Mapping[str, Flag],
    validated: Mapping[str, Flag],
    removed: Collection[str],
    old_flags: Mapping[str, Flag],
    old_users: Mapping[str, frozenset[str]],
) -> None:
    """Prerequisites that a change can break: those of the changed flags, those naming a
    removed flag, and those naming a changed flag's variants."""

    def check(key: str, only: str | None = None) -> None:
        for i, pre in enumerate(flags[key].prerequisites):
            if only is not None and pre.flag != only:
                continue
            path = f"{_at('$.flags', key)}.prerequisites[{i}]"
            target = flags.get(pre.flag)
            if target is None:
                raise ParseError(f"{path}.flag", f"undefined prerequisite flag {pre.flag!r}")
            for j, variant in enumerate(pre.variants):
                if variant not in target.variants:
                    raise ParseError(
                        f"{path}.variants[{j}]", f"flag {pre.flag!r} has no variant {variant!r}"
                    )

    for key in validated:
        check(key)
    for key in (*removed, *(k for k in validated if k in old_flags)):
        for user in old_users.get(key, _NONE):
            if user in flags and user not in validated:
                check(user, key)


def _check_prerequisite_graph(
    flags: Mapping[str, Flag],
    validated: Mapping[str, Flag],
    old_flags: Mapping[str, Flag],
    users: Mapping[str, frozenset[str]],
) -> None:
    """No prerequisite cycle, no chain deeper than ``MAX_CHAIN_DEPTH``: both can only appear
    through a flag whose prerequisites changed, so the graph around those is checked."""
    starts = [
        k
        for k, f in validated.items()
        if f.prerequisites and (k not in old_flags or old_flags[k].prerequisites != f.prerequisites)
    ]
    if not starts:
        return
    around = set(starts)
    todo = list(starts)
    while todo:  # everything reachable downwards
        key = todo.pop()
        for pre in flags[key].prerequisites:
            if pre.flag not in around and pre.flag in flags:
                around.add(pre.flag)
                todo.append(pre.flag)
    around |= _closure(starts, users)  # and everything above
    _check_prerequisite_chains({k: [p.flag for p in flags[k].prerequisites] for k in around})
