"""Keep evaluating threads running while a new ruleset is decoded and built (issue 17).

A provider or web process evaluates on many threads while one thread (a poll or stream
thread, a cache refresh) builds the next ruleset. Two things used to stop every evaluating
thread for a long time at 10,000 flags:

* The cyclic garbage collector. Building a ruleset allocates about 40 tracked objects per
  flag; the next young collection, and later the full ones, walk all of them while holding
  the GIL (0.3 s per walk at 10,000 flags, seconds for a full collection of a big heap).
  ``parse_ruleset(..., freeze=True)`` ends with ``gc.freeze()`` while the collector is still
  paused: every object alive then (the new ruleset among them) moves to the permanent
  generation, which collections never walk. Compiled rulesets hold no reference cycles, so a
  replaced one is still freed by reference counting, frozen or not. The cost is that cyclic
  garbage of the rest of the process that is alive at that moment is kept until
  ``gc.unfreeze()``; a process that cannot accept that sets ``FLAGAPP_GC_FREEZE=0``.
* ``json.loads`` of a multi-megabyte document: one C call that holds the GIL for its whole
  duration (about 0.1 s at 10,000 flags). ``loads`` here gives the decoder a Python object
  hook, so the interpreter can hand the GIL to another thread between two objects; ``dumps``
  (the last-known-good file) encodes the two outer levels one entry at a time for the same
  reason.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["dumps", "freeze_wanted", "loads"]


def _same(obj: dict[str, Any]) -> dict[str, Any]:
    # A Python-level call per decoded object: where a waiting thread can take the GIL.
    return obj


_DECODER = json.JSONDecoder(object_hook=_same)


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads`` (same input rules and errors) that lets other threads run while a
    large document is decoded."""
    if isinstance(data, bytes | bytearray):
        data = bytes(data).decode(json.detect_encoding(data), "surrogatepass")
    elif data.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
    # A decoded document is a tree (no cycles to find), so the collector is paused meanwhile
    # rather than walking the young objects a few hundred times.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _DECODER.decode(data)
    finally:
        if was_enabled:
            gc.enable()


def freeze_wanted() -> bool:
    """Whether long-lived rulesets end their parse with ``gc.freeze()``: yes unless the
    environment variable ``FLAGAPP_GC_FREEZE`` is ``0``/``false``/``off``/``no``."""
    return os.environ.get("FLAGAPP_GC_FREEZE", "1").strip().lower() not in (
        "0",
        "false",
        "off",
        "no",
    )


def dumps(value: Any, default: Callable[[Any], Any] | None = None, *, levels: int = 2) -> str:
    """Compact JSON (``json.dumps(value, separators=(",", ":"), default=default)``), the
    ``levels`` outer mappings encoded entry by entry so other threads run in between."""
    encoder = json.JSONEncoder(separators=(",", ":"), default=default)
    return _dumps(value, encoder, levels)


def _dumps(value: Any, encoder: json.JSONEncoder, levels: int) -> str:
    if levels <= 0 or not isinstance(value, Mapping):
        return encoder.encode(value)
    parts = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"keys must be str, not {type(key).__name__}")
        parts.append(f"{encoder.encode(key)}:{_dumps(item, encoder, levels - 1)}")
    return "{" + ",".join(parts) + "}"
