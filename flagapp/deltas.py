"""Deltas between published versions (docs/protocol.md, "Deltas"): what changed since a base.

Each process keeps, per environment, the per-entry digests of the last ``DELTA_HISTORY``
versions it served (16 bytes per flag and segment: ~0.3 MB per version at 10,000 flags, not
the documents). A delta from base etag B to the current document compares digests and
carries the entries that differ. A base this process never held is read once from the
stored snapshots (the database keeps ``SNAPSHOT_KEEP`` versions per environment); a base
that is not there either (too old, unknown, another deployment's) gives None: the caller
serves the full document.

The publisher does not need this to announce a change (it knows what it changed,
``flagapp.assembly``); the SDK views do, to answer ``A-IM: flagapp-delta`` requests from any
base a client holds. Split from ``flagapp.publishing``, which re-exports the public names.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from django.db import DEFAULT_DB_ALIAS

from .conf import settings

__all__ = ["delta_base_known", "delta_from", "forget_deltas", "remember_document"]


class _Digests:
    __slots__ = ("flags", "segments", "version")

    def __init__(self, version: int, flags: dict[str, bytes], segments: dict[str, bytes]) -> None:
        self.version = version
        self.flags = flags
        self.segments = segments


#: environment key -> base etag -> digests (None: known not to be a stored snapshot)
_history: dict[str, OrderedDict[str, _Digests | None]] = {}
_history_lock = threading.Lock()


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _entry_digests(
    entries: Mapping[str, Any], digests: Mapping[str, bytes] | None = None
) -> dict[str, bytes]:
    """BLAKE2b-128 of each entry's ``repr`` (what the engine compares too: it tells ``1``,
    ``1.0`` and ``true`` apart); ``digests``: the same, when the engine's parse made them
    (``BuildState.flag_digests``)."""
    if digests is not None and digests.keys() == entries.keys():
        return dict(digests)
    return {key: _digest(repr(value)) for key, value in entries.items()}


def _remember(environment_key: str, etag: str, digests: _Digests | None) -> None:
    limit = max(1, int(settings.DELTA_HISTORY))
    with _history_lock:
        held = _history.setdefault(environment_key, OrderedDict())
        held[etag] = digests
        held.move_to_end(etag)
        while len(held) > limit:
            held.popitem(last=False)


def _held(environment_key: str, etag: str) -> tuple[bool, _Digests | None]:
    with _history_lock:
        held = _history.get(environment_key)
        if held is None or etag not in held:
            return False, None
        return True, held[etag]


def _current_digests(environment_key: str, document: Mapping[str, Any], build: Any) -> _Digests:
    etag = str(document.get("etag") or "")
    _known, digests = _held(environment_key, etag)
    if digests is not None:
        return digests
    digests = _Digests(
        int(document.get("version") or 0),
        _entry_digests(document.get("flags") or {}, getattr(build, "flag_digests", None)),
        _entry_digests(document.get("segments") or {}, getattr(build, "segment_digests", None)),
    )
    _remember(environment_key, etag, digests)
    return digests


def _stored_digests(
    environment_key: str, etag: str, *, using: str = DEFAULT_DB_ALIAS
) -> _Digests | None:
    """The digests of the stored snapshot with this etag (newest such version), or None."""
    from .models import Snapshot as SnapshotModel

    row = (
        SnapshotModel.objects.using(using)
        .filter(environment__key=environment_key, etag=etag)
        .order_by("-version")
        .values_list("document", flat=True)
        .first()
    )
    if row is None:
        return None
    doc = json.loads(row)
    return _Digests(
        int(doc.get("version") or 0),
        _entry_digests(doc.get("flags") or {}),
        _entry_digests(doc.get("segments") or {}),
    )


def delta_base_known(environment_key: str, base_etag: str) -> bool | None:
    """Whether ``base_etag`` can be a delta base without a query: True (held), False (known
    not to be stored), None (ask :func:`delta_from`, which may query)."""
    known, digests = _held(environment_key, base_etag)
    if not known:
        return None
    return digests is not None


def delta_from(
    environment_key: str,
    base_etag: str,
    document: Mapping[str, Any],
    *,
    build: Any = None,
    using: str = DEFAULT_DB_ALIAS,
) -> dict[str, Any] | None:
    """The delta (docs/protocol.md) from the snapshot ``base_etag`` of ``environment_key`` to
    ``document`` (the current one; ``build``: its ruleset's ``build``, whose entry digests save
    work), or None when that base is not known here nor stored (serve the full document).

    May query the database once per unknown base (then remembered, found or not).
    """
    from openfeature_provider.engine.delta import delta_from_changes

    current = _current_digests(environment_key, document, build)  # a base for later deltas
    known, base = _held(environment_key, base_etag)
    if not known:
        base = _stored_digests(environment_key, base_etag, using=using)
        _remember(environment_key, base_etag, base)
    if base is None:
        return None
    old_flags, old_segments = base.flags, base.segments
    changed_flags = [k for k, d in current.flags.items() if old_flags.get(k) != d]
    changed_segments = [k for k, d in current.segments.items() if old_segments.get(k) != d]
    base_doc = {
        "version": base.version,
        "etag": base_etag,
        "flags": old_flags,
        "segments": old_segments,
    }
    return delta_from_changes(
        base_doc, document, changed_flags=changed_flags, changed_segments=changed_segments
    )


def forget_deltas() -> None:
    """Drop this process's delta history (tests)."""
    with _history_lock:
        _history.clear()


def remember_document(environment_key: str, etag: str, document: Mapping[str, Any]) -> None:
    """Hold the digests of ``document`` (a published version's) as a base for later deltas."""
    _remember(
        environment_key,
        etag,
        _Digests(
            int(document.get("version") or 0),
            _entry_digests(document.get("flags") or {}),
            _entry_digests(document.get("segments") or {}),
        ),
    )


def is_held(environment_key: str, etag: str) -> bool:
    """Whether this process holds the digests of ``etag`` (found or known missing)."""
    return _held(environment_key, etag)[0]
