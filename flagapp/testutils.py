"""Test helpers: force a flag's value in this process, whatever the snapshot says.

``override_flag`` works as a context manager, as a decorator of sync and async functions and
of ``unittest.TestCase`` classes (each ``test*`` method is wrapped). While active, the flag
resolves to the forced value in ``flagapp.evaluate``, ``{% flag %}``, ``@flag_required``, the
DRF permission and the OpenFeature Django source — no database row or snapshot needed, so a
test of a view does not have to build flags through the services.

Overrides are process-wide (not thread-local): a test that starts a server thread sees them
there too, which is what a test wants. Nesting restores the outer value on exit.
"""

from __future__ import annotations

import functools
import inspect
import unittest
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from . import evaluation

__all__ = ["override_flag", "reset_flag_cache"]

_T = TypeVar("_T")
_UNSET: Any = object()


class override_flag:
    """Force a flag: ``override_flag("k", active=True)`` or ``override_flag("k", value="v2")``.

    ``active`` sets a boolean flag; ``value`` any kind (its Python type decides the kind: a
    call asking for another type gets TYPE_MISMATCH, as with a real flag).
    """

    def __init__(self, key: str, active: bool | None = None, *, value: Any = _UNSET) -> None:
        if (active is None) == (value is _UNSET):
            raise TypeError("override_flag needs exactly one of active= or value=")
        self.key = key
        self.value = bool(active) if value is _UNSET else value
        self._saved: list[tuple[bool, Any]] = []

    def enable(self) -> None:
        self._saved.append(evaluation.set_override(self.key, self.value))

    def disable(self) -> None:
        evaluation.restore_override(self.key, self._saved.pop())

    def __enter__(self) -> override_flag:
        self.enable()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disable()

    def __call__(self, target: _T) -> _T:
        if isinstance(target, type):
            if issubclass(target, unittest.TestCase):
                return self._decorate_class(target)  # type: ignore[return-value]
            raise TypeError("override_flag can decorate functions and TestCase classes")
        func: Callable[..., Any] = target  # type: ignore[assignment]
        key, value = self.key, self.value
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                with override_flag(key, value=value):
                    return await func(*args, **kwargs)

            return async_inner  # type: ignore[return-value]

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with override_flag(key, value=value):
                return func(*args, **kwargs)

        return inner  # type: ignore[return-value]

    def _decorate_class(self, cls: type[unittest.TestCase]) -> type[unittest.TestCase]:
        for name, attr in list(vars(cls).items()):
            if name.startswith("test") and callable(attr):
                setattr(cls, name, override_flag(self.key, value=self.value)(attr))
        return cls


def reset_flag_cache() -> None:
    """Forget every environment's in-process ruleset (e.g. between tests whose database was
    rolled back: snapshot versions start again at 1 there)."""
    evaluation.clear_cache()
