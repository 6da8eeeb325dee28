"""``waffle.mixins``: ``WaffleFlagMixin``, ``WaffleSwitchMixin``, ``WaffleSampleMixin``.

As in django-waffle 5: set ``waffle_flag`` / ``waffle_switch`` / ``waffle_sample`` on the
view (a leading ``!`` negates); an inactive one calls ``invalid_waffle()`` (404).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.http import Http404

from . import flag_is_active, sample_is_active, switch_is_active

__all__ = ["BaseWaffleMixin", "WaffleFlagMixin", "WaffleSampleMixin", "WaffleSwitchMixin"]


class BaseWaffleMixin:
    def validate_waffle(self, waffle: str, func: Callable[[str], bool]) -> bool:
        if waffle.startswith("!"):
            return not func(waffle[1:])
        return func(waffle)

    def invalid_waffle(self) -> Any:
        raise Http404("Inactive waffle")


class WaffleFlagMixin(BaseWaffleMixin):
    """404 unless flag ``waffle_flag`` is active for the request."""

    waffle_flag: str | None = None

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.validate_waffle(str(self.waffle_flag), partial(flag_is_active, request)):
            return self.invalid_waffle()
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]


class WaffleSampleMixin(BaseWaffleMixin):
    """404 unless sample ``waffle_sample`` draws active."""

    waffle_sample: str | None = None

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.validate_waffle(str(self.waffle_sample), sample_is_active):
            return self.invalid_waffle()
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]


class WaffleSwitchMixin(BaseWaffleMixin):
    """404 unless switch ``waffle_switch`` is on."""

    waffle_switch: str | None = None

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.validate_waffle(str(self.waffle_switch), switch_is_active):
            return self.invalid_waffle()
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
