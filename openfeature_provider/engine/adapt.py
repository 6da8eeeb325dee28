"""Resolution + the caller's default -> what the caller serves: the one adapter.

Why: the provider, the Django app (``flagapp.evaluation``) and the OFREP views each turned a
``Resolution`` into a served value, and the four copies drifted (which reason an error
carries, whether a variant survives a default, float coercion). They call ``served`` instead.

The contract (docs/ruleset-format.md, "Evaluation"):

- ``use_default`` without an error (disabled, prerequisite failed, no match with a null
  fallthrough): the caller's default, no variant, the resolution's reason, no error code.
- ``use_default`` with an error: the caller's default, no variant, reason ``ERROR``, the
  engine's error code (OpenFeature's spelling) and message.
- otherwise the variant's value (an integral value is served as a float when the caller asked
  for a float), its variant and reason.

Served values are the snapshot's own objects, shared by every evaluation; a caller that hands
object values to code that may mutate them copies them with ``copy_value`` (iterative: it
never meets the recursion limit, whatever the depth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .types import Reason, Resolution

__all__ = ["Served", "ServedCache", "copy_value", "served"]


@dataclass(frozen=True, slots=True)
class Served:
    """What to serve for one evaluation (OpenFeature's resolution details, minus metadata,
    which is ``Resolution.metadata``)."""

    value: Any
    variant: str | None
    reason: str
    error_code: str | None = None
    error_message: str | None = None

    @property
    def is_default(self) -> bool:
        """The caller's default is served (disabled, no match, or an error)."""
        return self.variant is None


def served(res: Resolution, default: Any, kind: str | None = None) -> Served:
    """The adapter; ``kind`` is the type the caller asked for (None: no coercion)."""
    if res.use_default:
        if res.error_code is None:
            return Served(default, None, res.reason)
        return Served(default, None, Reason.ERROR, res.error_code, res.error_message)
    value = res.value
    if kind == "float" and type(value) is int:
        value = float(value)
    return Served(value, res.variant, res.reason)


class ServedCache:
    """``served`` memoized per pre-built Resolution.

    The engine returns the same ``Resolution`` object for every evaluation with the same
    outcome, and a served value (not the default) depends on nothing else, so hot paths keep
    one ``Served`` per (Resolution, kind). Bounded: cleared when full. Not for object values
    that will be copied per call (the copy is per call anyway).
    """

    __slots__ = ("_limit", "_memo")

    def __init__(self, limit: int = 4096) -> None:
        self._memo: dict[tuple[int, str | None], tuple[Resolution, Served]] = {}
        self._limit = limit

    def __call__(self, res: Resolution, default: Any, kind: str | None = None) -> Served:
        if res.use_default:
            return served(res, default, kind)
        key = (id(res), kind)
        hit = self._memo.get(key)
        if hit is not None and hit[0] is res:
            return hit[1]
        result = served(res, default, kind)
        if len(self._memo) >= self._limit:
            self._memo.clear()
        self._memo[key] = (res, result)
        return result


def copy_value(value: Any) -> Any:
    """A deep copy of a JSON value (dicts and lists copied, scalars shared), without
    recursion. Containers other than dict/list (a tuple, a mapping proxy) are copied as
    lists/dicts."""
    if not isinstance(value, dict | list | tuple):
        return value
    root: list[Any] = [None]
    # (source container, target container, key in the target's parent)
    stack: list[tuple[Any, Any]] = [(value, (root, 0))]
    while stack:
        src, (parent, slot) = stack.pop()
        if isinstance(src, dict):
            dst_d: dict[Any, Any] = {}
            parent[slot] = dst_d
            for k, v in src.items():
                if isinstance(v, dict | list | tuple):
                    dst_d[k] = None
                    stack.append((v, (dst_d, k)))
                else:
                    dst_d[k] = v
        else:
            dst_l: list[Any] = [None] * len(src)
            parent[slot] = dst_l
            for i, v in enumerate(src):
                if isinstance(v, dict | list | tuple):
                    stack.append((v, (dst_l, i)))
                else:
                    dst_l[i] = v
    return root[0]
