"""``FlagRequiredMixin``: ``@flag_required`` for class-based views.

::

    class NewCheckout(FlagRequiredMixin, TemplateView):
        required_flag = "checkout.new-flow"   # "!key" negates
        flag_redirect_to = None               # None: 404; else a URL or URL name

Put it first among the bases so the check runs before any other ``dispatch``. Async
class-based views (every handler ``async def``) are supported.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .decorators import _refuse, parse_flag_spec
from .evaluation import aflag_is_active, flag_is_active

__all__ = ["FlagRequiredMixin"]


class FlagRequiredMixin:
    required_flag: str | None = None
    flag_redirect_to: str | None = None

    def get_required_flag(self) -> str:
        if not self.required_flag:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs required_flag or get_required_flag()"
            )
        return self.required_flag

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        key, negate = parse_flag_spec(self.get_required_flag())
        if getattr(self, "view_is_async", False):
            return self._adispatch(request, key, negate, *args, **kwargs)
        if flag_is_active(request, key) == negate:
            return _refuse(key, self.flag_redirect_to)
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    async def _adispatch(
        self, request: Any, key: str, negate: bool, *args: Any, **kwargs: Any
    ) -> Any:
        if await aflag_is_active(request, key) == negate:
            return _refuse(key, self.flag_redirect_to)
        return await super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
