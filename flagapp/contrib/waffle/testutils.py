"""``waffle.testutils``: ``override_flag``, ``override_switch``, ``override_sample``.

Same signatures and uses as django-waffle 5 (context manager, decorator of functions and
of ``TestCase`` classes), but no database row is written: each forces the flagapp flag in
this process through :class:`flagapp.testutils.override_flag`, so a project's existing
waffle tests pass against flagapp without creating waffle objects.

``override_flag(name, active=None)`` means "evaluate normally" (waffle's everyone=Unknown):
no override is set.
"""

from __future__ import annotations

from typing import Any

from django.test.utils import TestContextDecorator

from flagapp.testutils import override_flag as _flagapp_override

from .keys import flag_key, sample_key, switch_key

__all__ = ["override_flag", "override_sample", "override_switch"]


class _overrider(TestContextDecorator):
    def __init__(self, name: str, active: Any) -> None:
        super().__init__()
        self.name = name
        self.active = active
        self._stack: list[_flagapp_override | None] = []

    def key(self) -> str:
        raise NotImplementedError

    def forced_value(self) -> Any:
        """The value to force, or None to leave the flag alone."""
        raise NotImplementedError

    def enable(self) -> None:
        value = self.forced_value()
        inner = None if value is None else _flagapp_override(self.key(), value=value)
        if inner is not None:
            inner.enable()
        self._stack.append(inner)

    def disable(self) -> None:
        inner = self._stack.pop()
        if inner is not None:
            inner.disable()


class override_flag(_overrider):
    """``override_flag("name", active=True|False|None)``."""

    def key(self) -> str:
        return flag_key(self.name)

    def forced_value(self) -> Any:
        return None if self.active is None else bool(self.active)


class override_switch(_overrider):
    """``override_switch("name", active=True|False)``."""

    def key(self) -> str:
        return switch_key(self.name)

    def forced_value(self) -> Any:
        return bool(self.active)


class override_sample(_overrider):
    """``override_sample("name", active=True|False|percent)``: True is 100 %, False 0 %."""

    def key(self) -> str:
        return sample_key(self.name)

    def forced_value(self) -> Any:
        if self.active is True:
            return 100.0
        if self.active is False:
            return 0.0
        return float(self.active)
