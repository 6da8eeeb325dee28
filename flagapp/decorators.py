"""``@flag_required``: a view that exists only while a flag is on.

::

    @flag_required("checkout.new-flow")                   # 404 while off
    @flag_required("checkout.new-flow", redirect_to="home")  # or redirect (URL or URL name)
    @flag_required("!legacy.checkout")                    # "!" negates: only while off

Why 404 and not 403: an unreleased page should look like it does not exist. Works on sync
and async views; an async view evaluates inline when the in-process ruleset is warm and
the request's context was already built, else in a worker thread (building the context or
loading a snapshot may query the database, which async code may not do directly).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect

from .evaluation import aflag_is_active, flag_is_active

__all__ = ["flag_required", "parse_flag_spec"]

_V = TypeVar("_V", bound=Callable[..., Any])


def parse_flag_spec(spec: str) -> tuple[str, bool]:
    """``"!key"`` -> ``("key", True)``: the key and whether the requirement is negated."""
    if spec.startswith("!"):
        return spec[1:], True
    return spec, False


def _refuse(key: str, redirect_to: str | None) -> HttpResponse:
    if redirect_to is not None:
        return redirect(redirect_to)
    raise Http404(f"flag {key!r} is not active")


def flag_required(spec: str, redirect_to: str | None = None) -> Callable[[_V], _V]:
    """Serve the view only when flag ``spec`` is on (or off, with a leading ``!``)."""
    key, negate = parse_flag_spec(spec)

    def decorator(view: _V) -> _V:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
                if await aflag_is_active(request, key) == negate:
                    return _refuse(key, redirect_to)
                return await view(request, *args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(view)
        def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
            if flag_is_active(request, key) == negate:
                return _refuse(key, redirect_to)
            return view(request, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
