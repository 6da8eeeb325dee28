"""Walks over the rule graph: who refers to whom, what a flag reads, what a change reaches.

The one home of these walks (issue 12): the parser's cycle and depth checks, the compiler's
segment order, ``changed_flag_keys`` and the Django app's "which rules use this segment" all
call these functions instead of walking conditions themselves. Everything is iterative, so a
long chain never meets Python's recursion limit.

Conditions may be engine ``Condition`` objects or raw format-v1 mappings (``{"op", "attr",
"values"}``), so code that holds unparsed documents (the admin, the services) can use the
same walks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .operators import OPERATORS
from .types import Condition, Flag, Segment

__all__ = [
    "attributes_read",
    "dependents",
    "dependents_in_order",
    "find_cycle",
    "flag_segment_refs",
    "longest_chain",
    "prerequisite_graph",
    "segment_graph",
    "segment_refs",
    "topological_order",
]


def _parts(cond: Condition | Mapping[str, Any]) -> tuple[Any, Any, Any]:
    if isinstance(cond, Condition):
        return cond.op, cond.attr, cond.values
    return cond.get("op"), cond.get("attr"), cond.get("values") or ()


def segment_refs(conditions: Iterable[Condition | Mapping[str, Any]]) -> set[str]:
    """Segment keys named by ``in_segment``/``not_in_segment`` conditions (unknown operators
    and malformed raw conditions are skipped: validation reports them, not this walk)."""
    refs: set[str] = set()
    for cond in conditions:
        if not isinstance(cond, Condition | Mapping):
            continue
        op_name, _attr, values = _parts(cond)
        op = OPERATORS.get(op_name) if isinstance(op_name, str) else None
        if op is not None and not op.uses_attr and isinstance(values, list | tuple):
            refs.update(v for v in values if isinstance(v, str))
    return refs


def flag_segment_refs(flag: Flag) -> set[str]:
    """Segments a flag's rules name directly."""
    return segment_refs(cond for rule in flag.rules for cond in rule.when)


def segment_graph(segments: Mapping[str, Segment]) -> dict[str, list[str]]:
    """segment key -> the segments its conditions name (in document order)."""
    return {
        key: [v for c in seg.when if not OPERATORS[c.op].uses_attr for v in c.values]
        for key, seg in segments.items()
    }


def prerequisite_graph(flags: Mapping[str, Flag]) -> dict[str, list[str]]:
    """flag key -> its prerequisite flags (in document order)."""
    return {key: [p.flag for p in flag.prerequisites] for key, flag in flags.items()}


def dependents(changed: Iterable[str], depends_on: Mapping[str, Iterable[str]]) -> set[str]:
    """``changed`` plus every key that (transitively) depends on one of them."""
    reverse: dict[str, set[str]] = {}
    for key, deps in depends_on.items():
        for dep in deps:
            reverse.setdefault(dep, set()).add(key)
    out = set(changed)
    todo = list(out)
    while todo:
        for user in reverse.get(todo.pop(), ()):
            if user not in out:
                out.add(user)
                todo.append(user)
    return out


def dependents_in_order(
    changed: Iterable[str], depends_on: Mapping[str, Iterable[str]]
) -> list[str]:
    """The keys of :func:`dependents`, breadth first: ``changed`` first, then each key's
    direct dependents in ``depends_on``'s order (document order). Where the order shows —
    which flags a blast-radius preview lists and names in its examples — it must not depend
    on set iteration."""
    reverse: dict[str, list[str]] = {}
    for key, deps in depends_on.items():
        for dep in dict.fromkeys(deps):
            reverse.setdefault(dep, []).append(key)
    out = list(dict.fromkeys(changed))
    seen = set(out)
    i = 0
    while i < len(out):
        for user in reverse.get(out[i], ()):
            if user not in seen:
                seen.add(user)
                out.append(user)
        i += 1
    return out


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as ``[a, b, ..., a]``, or None. Iterative depth-first search; edges to keys
    outside the graph are ignored."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for start in graph:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        chain = [start]
        state[start] = 1
        while stack:
            node, i = stack[-1]
            edges = graph.get(node, ())
            if i < len(edges):
                stack[-1] = (node, i + 1)
                nxt = edges[i]
                mark = state.get(nxt)
                if mark == 1:
                    return [*chain[chain.index(nxt) :], nxt]
                if mark is None and nxt in graph:
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    chain.append(nxt)
            else:
                state[node] = 2
                stack.pop()
                chain.pop()
    return None


def topological_order(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """Keys so that every key comes after the keys it points to (an acyclic graph; edges to
    keys outside the graph are ignored)."""
    order: list[str] = []
    done: set[str] = set()
    for start in graph:
        if start in done:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        done.add(start)
        while stack:
            node, i = stack[-1]
            edges = graph.get(node, ())
            if i < len(edges):
                stack[-1] = (node, i + 1)
                nxt = edges[i]
                if nxt not in done and nxt in graph:
                    done.add(nxt)
                    stack.append((nxt, 0))
            else:
                stack.pop()
                order.append(node)
    return order


def longest_chain(graph: Mapping[str, Sequence[str]]) -> tuple[int, list[str]]:
    """The longest path in an acyclic graph: (number of keys on it, the path from its start).
    An isolated key is a chain of 1."""
    length: dict[str, int] = {}
    following: dict[str, str | None] = {}
    for node in topological_order(graph):
        best, after = 1, None
        for nxt in graph.get(node, ()):
            if nxt in length and length[nxt] + 1 > best:
                best, after = length[nxt] + 1, nxt
        length[node], following[node] = best, after
    if not length:
        return 0, []
    start = max(length, key=length.__getitem__)
    path: list[str] = []
    cur: str | None = start
    while cur is not None:
        path.append(cur)
        cur = following[cur]
    return length[start], path


def attributes_read(
    flag: Flag,
    segments: Mapping[str, Segment],
    flags: Mapping[str, Flag] | None = None,
) -> set[str]:
    """Context attributes a flag's evaluation may read: its conditions' attributes, those of
    the segments they use (transitively), rollout ``bucket_by`` paths, ``targetingKey`` when a
    segment's include/exclude lists are consulted, and — with ``flags`` — the same for its
    prerequisites (transitively)."""
    out: set[str] = set()
    seen_flags: set[str] = set()
    seen_segments: set[str] = set()
    todo_flags = [flag]
    while todo_flags:
        current = todo_flags.pop()
        if current.key in seen_flags:
            continue
        seen_flags.add(current.key)
        serves = [rule.serve for rule in current.rules]
        if current.fallthrough is not None:
            serves.append(current.fallthrough)
        out.update(s.rollout.bucket_by for s in serves if s.rollout is not None)
        todo_segments = _collect((cond for rule in current.rules for cond in rule.when), out)
        while todo_segments:
            key = todo_segments.pop()
            seg = segments.get(key)
            if key in seen_segments or seg is None:
                continue
            seen_segments.add(key)
            if seg.include or seg.exclude:
                out.add("targetingKey")
            todo_segments.extend(_collect(seg.when, out))
        if flags is not None:
            todo_flags.extend(flags[p.flag] for p in current.prerequisites if p.flag in flags)
    return out


def _collect(conditions: Iterable[Condition], attrs: set[str]) -> list[str]:
    """Add the conditions' attributes to ``attrs``; return the segments they name."""
    refs: list[str] = []
    for cond in conditions:
        if OPERATORS[cond.op].uses_attr:
            if cond.attr is not None:
                attrs.add(cond.attr)
        else:
            refs.extend(cond.values)
    return refs
