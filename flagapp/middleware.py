"""``FlagMiddleware``: ``request.flags``, a per-request handle on flag evaluation.

::

    MIDDLEWARE = [..., "django.contrib.auth.middleware.AuthenticationMiddleware",
                  "flagapp.middleware.FlagMiddleware", ...]

    if request.flags.is_active("checkout.new-flow"): ...
    color = request.flags.get_value("checkout.button-color", "blue")
    details = request.flags.evaluate("checkout.limit", 10)
    "checkout.new-flow" in request.flags        # same as is_active

Place it after ``AuthenticationMiddleware`` (the default context reads ``request.user``).
Nothing is evaluated until asked: the middleware only attaches the handle, so it costs
nothing on requests that check no flag. Sync and async capable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .evaluation import EvaluationDetails, evaluate

__all__ = ["FlagMiddleware", "RequestFlags"]


class RequestFlags:
    """Flag evaluation bound to one request (its context is built once and cached on it)."""

    __slots__ = ("_request",)

    def __init__(self, request: Any) -> None:
        self._request = request

    def evaluate(self, key: str, default: Any, **kwargs: Any) -> EvaluationDetails:
        return evaluate(key, default, self._request, **kwargs)

    def is_active(self, key: str, **kwargs: Any) -> bool:
        return evaluate(key, False, self._request, **kwargs).value is True

    def get_value(self, key: str, default: Any, **kwargs: Any) -> Any:
        return evaluate(key, default, self._request, **kwargs).value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.is_active(key)

    def __repr__(self) -> str:
        return f"<RequestFlags for {self._request!r}>"


class FlagMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        request.flags = RequestFlags(request)
        if self._is_async:
            return self._acall(request)
        return self.get_response(request)

    async def _acall(self, request: Any) -> Any:
        response: Awaitable[Any] = self.get_response(request)
        return await response
