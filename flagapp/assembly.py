"""Incremental assembly of published documents: a change costs what it touched.

Why: a publish used to read every flag of the environment from the database, hash and
serialise the whole document, whatever the change (2.2 s at 10,000 flags for one kill
switch, docs/scale.md). Here the publisher keeps, per environment and database alias, the
last document it published as **fragments**: each flag and segment entry with its canonical
JSON text (``"key":{...}``, sorted keys — the very bytes the content hash covers). A change
re-reads only the flags and segments it touched (``flagapp.documents.compile_entries`` with
keys), re-encodes those entries, and assembles the document text and its etag by joining
the kept fragments — no unchanged entry is read, decoded or encoded again.

What a change touched is told by its writer: ``flagapp.publishing.record(env_ids,
flags=[keys], segments=[keys])`` in the change's transaction. The outbox rows are durable;
the keys are remembered in this process, by outbox row (:func:`note_touched`), because the
publish after COMMIT runs in the process that wrote. The publisher takes the incremental
path only when it can prove the result equals a full compile:

* every outbox row it clears was noted here with its keys (a row of another process, or a
  writer that did not say what it touched, means a full compile);
* the assembly held here is bound to exactly the latest stored snapshot (version and etag):
  everything committed before that snapshot's compile is in it, and everything committed
  since left an outbox row (the write path records one in the same transaction), so
  "held fragments + the touched entries re-read now" is the current truth.

Anything else — the first publish of a process, another process published meanwhile, a
direct ``publish(env)`` call (no outbox rows: the caller may have changed anything) or the
reconciler — compiles in full, and the result becomes the held assembly. Writes that
bypass the services (no outbox row) are what the reconciler's periodic full compile exists
for; it still compares against the whole database.

The stored document is assembled the same way from each entry's text (in the entry's own
key order): byte for byte ``json.dumps`` of ``flagapp.documents.compile_environment``'s
document, flags and segments sorted by key (tests/flagapp/test_assembly.py checks random
edit sequences against full compiles).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .documents import FORMAT_VERSION

__all__ = [
    "Assembly",
    "Changes",
    "Touched",
    "bound",
    "follow",
    "forget",
    "forget_touched",
    "held",
    "note_touched",
    "remember",
    "touched_by",
]


def _key_text(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def _canonical(entry: Any) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Fragment:
    """One entry of a document, never mutated, with its two texts: ``item``, the canonical
    ``"key":{...}`` (sorted keys: what the content hash covers) and ``text``, the same in
    the entry's own key order (what the stored document holds, as ``json.dumps`` of the
    compiled document always did: readers that compare entries by ``repr`` — the delta
    history, the engine — see the same entries whether decoded from storage or compiled)."""

    __slots__ = ("entry", "item", "text")

    def __init__(self, key: str, entry: Any) -> None:
        self.entry = entry
        name = _key_text(key)
        self.item = f"{name}:{_canonical(entry)}"
        self.text = f"{name}:{json.dumps(entry, separators=(',', ':'), ensure_ascii=False)}"


@dataclass(frozen=True, slots=True)
class Changes:
    """What one assembly changed against the one it was built from (sorted keys)."""

    flags: tuple[str, ...]
    segments: tuple[str, ...]
    removed_flags: tuple[str, ...]
    removed_segments: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.flags or self.segments or self.removed_flags or self.removed_segments)


class Assembly:
    """A whole environment's document as fragments, sorted by key; immutable once built.

    ``etag`` is the content hash of ``flagapp.documents.compute_etag`` (the same bytes: the
    canonical JSON of ``{"flags": ..., "segments": ...}``), so a full compile and an
    assembly of the same content agree on it.
    """

    __slots__ = ("environment", "etag", "flags", "segments")

    def __init__(
        self, environment: str, flags: dict[str, Fragment], segments: dict[str, Fragment]
    ) -> None:
        self.environment = environment
        self.flags = flags
        self.segments = segments
        canonical = (
            '{"flags":{'
            + ",".join(f.item for f in flags.values())
            + '},"segments":{'
            + ",".join(s.item for s in segments.values())
            + "}}"
        )
        self.etag = "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @classmethod
    def full(
        cls, environment: str, flags: Mapping[str, Any], segments: Mapping[str, Any]
    ) -> Assembly:
        """The assembly of a whole compile (every entry encoded once)."""
        return cls(
            environment,
            {key: Fragment(key, flags[key]) for key in sorted(flags)},
            {key: Fragment(key, segments[key]) for key in sorted(segments)},
        )

    def updated(
        self,
        touched: Touched,
        flags: Mapping[str, Any],
        segments: Mapping[str, Any],
    ) -> tuple[Assembly, Changes]:
        """This assembly with the ``touched`` keys re-read: ``flags``/``segments`` hold
        their current entries (a touched key absent there is gone: deleted or archived)."""
        new_flags, changed_flags, removed_flags = _merge(self.flags, touched.flags, flags)
        new_segments, changed_segments, removed_segments = _merge(
            self.segments, touched.segments, segments
        )
        changes = Changes(changed_flags, changed_segments, removed_flags, removed_segments)
        if not changes:
            return self, changes
        return Assembly(self.environment, new_flags, new_segments), changes

    def changes_from(self, older: Assembly) -> Changes:
        """What differs from ``older`` (compares the kept texts: O(entries), no encoding)."""
        return Changes(
            _differing(older.flags, self.flags),
            _differing(older.segments, self.segments),
            tuple(sorted(older.flags.keys() - self.flags.keys())),
            tuple(sorted(older.segments.keys() - self.segments.keys())),
        )

    def text(self, version: int) -> str:
        """The stored document of ``version``: fragments joined, nothing re-encoded."""
        head = json.dumps(
            {
                "format": FORMAT_VERSION,
                "environment": self.environment,
                "version": version,
                "etag": self.etag,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return (
            head[:-1]
            + ',"flags":{'
            + ",".join(f.text for f in self.flags.values())
            + '},"segments":{'
            + ",".join(s.text for s in self.segments.values())
            + "}}"
        )

    def document(self, version: int) -> dict[str, Any]:
        """The document of ``version`` as a dict for the engine (entries shared, never
        mutated; the containers are new, so an older ruleset's ``raw`` never changes)."""
        return {
            "format": FORMAT_VERSION,
            "environment": self.environment,
            "version": version,
            "etag": self.etag,
            "flags": {key: f.entry for key, f in self.flags.items()},
            "segments": {key: s.entry for key, s in self.segments.items()},
        }

    def delta(
        self, changes: Changes, *, version: int, base_version: int, base_etag: str
    ) -> dict[str, Any]:
        """The delta (docs/protocol.md, "Deltas") from the snapshot ``base_etag`` this
        assembly was updated from: the changed entries only, whatever the size."""
        return {
            "delta": 1,
            "format": FORMAT_VERSION,
            "environment": self.environment,
            "base": {"version": base_version, "etag": base_etag},
            "version": version,
            "etag": self.etag,
            "flags": {key: self.flags[key].entry for key in changes.flags},
            "segments": {key: self.segments[key].entry for key in changes.segments},
            "removedFlags": list(changes.removed_flags),
            "removedSegments": list(changes.removed_segments),
            "counts": {"flags": len(self.flags), "segments": len(self.segments)},
        }


def _merge(
    held: dict[str, Fragment], touched: frozenset[str], current: Mapping[str, Any]
) -> tuple[dict[str, Fragment], tuple[str, ...], tuple[str, ...]]:
    if not touched:
        return held, (), ()
    changed: list[str] = []
    removed: list[str] = []
    replace: dict[str, Fragment] = {}
    for key in sorted(touched):
        old = held.get(key)
        if key in current:
            fragment = Fragment(key, current[key])
            if old is None or old.item != fragment.item:
                replace[key] = fragment
                changed.append(key)
        elif old is not None:
            removed.append(key)
    if not changed and not removed:
        return held, (), ()
    merged = dict(held)
    merged.update(replace)
    for key in removed:
        del merged[key]
    if any(key not in held for key in replace):  # added keys: keep the order sorted
        merged = {key: merged[key] for key in sorted(merged)}
    return merged, tuple(changed), tuple(removed)


def _differing(old: Mapping[str, Fragment], new: Mapping[str, Fragment]) -> tuple[str, ...]:
    changed = []
    for key, fragment in new.items():
        before = old.get(key)
        if before is None or before.item != fragment.item:
            changed.append(key)
    return tuple(changed)


# ---------------------------------------------------------------------------------------
# what each outbox row touched (noted by publishing.record in the writing process)


@dataclass(frozen=True, slots=True)
class Touched:
    """The flag and segment keys a set of writes touched."""

    flags: frozenset[str]
    segments: frozenset[str]


_NOTED_MAX = 10_000
#: (database alias, outbox row pk) -> what that write touched; bounded (a row cleared by
#: another process is never asked about again, so the oldest are dropped).
_noted: OrderedDict[tuple[str, int], Touched | None] = OrderedDict()
_lock = threading.Lock()


def note_touched(using: str, row_ids: Iterable[int | None], touched: Touched | None) -> None:
    """Remember that the committed outbox rows ``row_ids`` stand for a write of these keys
    (``None``: of anything — their publish compiles in full)."""
    with _lock:
        for pk in row_ids:
            if pk is None:
                continue
            _noted[(using, pk)] = touched
        while len(_noted) > _NOTED_MAX:
            _noted.popitem(last=False)


def touched_by(using: str, row_ids: Iterable[int]) -> Touched | None:
    """The union of what the rows touched, or None when any row was not noted here (then
    nobody can say what it changed: compile in full)."""
    flags: set[str] = set()
    segments: set[str] = set()
    any_row = False
    with _lock:
        for pk in row_ids:
            noted = _noted.get((using, pk))
            if noted is None:
                return None
            any_row = True
            flags |= noted.flags
            segments |= noted.segments
    if not any_row:
        return None
    return Touched(frozenset(flags), frozenset(segments))


def forget_touched(using: str, row_ids: Iterable[int]) -> None:
    """The rows were cleared by a committed publish: drop what was noted for them."""
    with _lock:
        for pk in row_ids:
            _noted.pop((using, pk), None)


# ---------------------------------------------------------------------------------------
# the assembly held per environment, bound to the snapshot it was published as

#: (database alias, environment pk) -> (version, etag, assembly)
_held: dict[tuple[str, int], tuple[int, str, Assembly]] = {}


def remember(using: str, environment_id: int, version: int, assembly: Assembly) -> None:
    """``assembly`` is what snapshot ``version`` of the environment holds (called once that
    snapshot is committed, or known to be the latest)."""
    _held[(using, environment_id)] = (version, assembly.etag, assembly)


def held(using: str, environment_id: int) -> Assembly | None:
    """The last assembly remembered for the environment, bound or not (to compare with)."""
    entry = _held.get((using, environment_id))
    return entry[2] if entry is not None else None


def bound(using: str, environment_id: int, version: int, etag: str) -> Assembly | None:
    """The held assembly when it is exactly snapshot ``version`` with ``etag`` (the latest
    stored), else None."""
    entry = _held.get((using, environment_id))
    if entry is None or entry[0] != version or entry[1] != etag:
        return None
    return entry[2]


def follow(environment_key: str, delta: Mapping[str, Any]) -> bool:
    """Another process published ``delta`` (its announcement, confirmed against the store):
    move the assembly held here for that environment along with it — the delta's entries
    re-encoded, nothing else — when the held one is exactly the delta's base. The result is
    bound to the new version only when its content hash is the announced etag, so a publish
    in this process stays incremental whichever process published before it. False when
    nothing held here was that base (the next publish here then compiles in full)."""
    base = delta.get("base") or {}
    flags = delta.get("flags") or {}
    segments = delta.get("segments") or {}
    touched = Touched(
        frozenset(flags) | frozenset(delta.get("removedFlags") or ()),
        frozenset(segments) | frozenset(delta.get("removedSegments") or ()),
    )
    moved = False
    for key, (version, etag, held_assembly) in list(_held.items()):
        if held_assembly.environment != environment_key:
            continue
        if (version, etag) != (base.get("version"), base.get("etag")):
            continue
        updated, _changes = held_assembly.updated(touched, flags, segments)
        if updated.etag == delta.get("etag"):
            _held[key] = (int(delta["version"]), updated.etag, updated)
            moved = True
    return moved


def forget() -> None:
    """Drop everything held (tests; a process that wants the next publish compiled in full)."""
    with _lock:
        _noted.clear()
    _held.clear()
