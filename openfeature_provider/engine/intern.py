"""One shared copy of equal immutable pieces across flags and versions (issue 17 item 4).

Why: at 10,000 flags most pieces repeat — the variants ``{"on": true, "off": false}``, a
weight ``("on", 25)``, a serve ``{"variant": "off"}``, a condition ``plan in [pro, team]``,
metadata such as ``{"owner": "team-3", "type": "release"}`` — and each parse used to keep one
copy per flag (about a third of a ruleset's memory). Everything here is frozen, so sharing is
safe; ``shared`` returns the copy already held for an equal piece.

Equality is the JSON's, not Python's: ``1``, ``1.0`` and ``true`` are equal in Python, so
keys carry each scalar's type (``key_of``), and a piece holding anything else (an object
variant) is not shared. The table only grows with distinct pieces and is emptied when it
reaches ``LIMIT`` entries (it then refills from the next parses), so a long-lived process
whose rules keep changing does not accumulate old pieces.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["LIMIT", "key_of", "shared"]

T = TypeVar("T")
LIMIT = 200_000
_TABLE: dict[Any, Any] = {}
_SCALARS = (str, bool, int, float, type(None))


def key_of(value: Any) -> Any:
    """A hashable key telling JSON-different values apart, or None (not shareable)."""
    t = type(value)
    if t in _SCALARS:
        return (t, value)
    if t is tuple or t is list:
        out = []
        for item in value:
            k = key_of(item)
            if k is None:
                return None
            out.append(k)
        return (tuple, tuple(out))
    return None


def shared(value: T, key: Any) -> T:
    """The piece held for ``key`` (``value`` itself the first time); ``key`` None: ``value``."""
    if key is None:
        return value
    held = _TABLE.get(key)
    if held is not None:
        return held  # type: ignore[no-any-return]
    if len(_TABLE) >= LIMIT:
        _TABLE.clear()
    _TABLE[key] = value
    return value
