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

Strings a ruleset keeps are *copies* made during the parse (``string``, ``fresh``), never the
decoded document's own objects: a few kept strings scattered over the document's memory
would pin all of it (the allocator returns a 256 KiB arena only when every object in it is
freed), and a 10,000-flag parse then kept the 25 MiB of its decoded document resident.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["LIMIT", "fresh", "key_of", "scalar", "shared", "string"]

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


_STRINGS: dict[str, str] = {}


def fresh(text: str) -> str:
    """A new string object equal to ``text`` (not the decoded document's own)."""
    return (text + " ")[:-1]


def string(text: str) -> str:
    """One shared copy of ``text``, made by ``fresh`` the first time it is seen."""
    held = _STRINGS.get(text)
    if held is None:
        if len(_STRINGS) >= LIMIT:
            _STRINGS.clear()
        held = fresh(text)
        _STRINGS[held] = held
    return held


def scalar(value: Any) -> Any:
    """``value`` as a kept copy: strings through ``string``, numbers as new objects (small
    ints and booleans are the interpreter's own singletons anyway); anything else as is."""
    t = type(value)
    if t is str:
        return string(value)
    if t is int:
        return value + 0
    if t is float:
        return value * 1.0  # keeps -0.0
    return value
