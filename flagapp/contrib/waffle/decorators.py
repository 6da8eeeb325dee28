"""``waffle.decorators``: ``@waffle_flag`` and ``@waffle_switch``, answered by flagapp.

Same behaviour as django-waffle 5: a leading ``!`` negates; when inactive the view raises
``Http404`` unless ``redirect_to`` (a URL name or a view, reversed with the view's
arguments) can be reversed, in which case it redirects.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import WRAPPER_ASSIGNMENTS, wraps
from typing import Any

from django.http import Http404, HttpResponsePermanentRedirect, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse

from . import flag_is_active, switch_is_active

__all__ = ["get_response_to_redirect", "waffle_flag", "waffle_switch"]


def _check(name: str, active: Callable[[str], bool]) -> bool:
    if name.startswith("!"):
        return not active(name[1:])
    return active(name)


def _guard(
    name: str, redirect_to: Any, active: Callable[[Any, str], bool]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view, assigned=WRAPPER_ASSIGNMENTS)
        def _wrapped_view(request: Any, *args: Any, **kwargs: Any) -> Any:
            if not _check(name, lambda n: active(request, n)):
                response = get_response_to_redirect(redirect_to, *args, **kwargs)
                if response:
                    return response
                raise Http404
            return view(request, *args, **kwargs)

        return _wrapped_view

    return decorator


def waffle_flag(
    flag_name: str, redirect_to: Any = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return _guard(flag_name, redirect_to, lambda request, name: flag_is_active(request, name))


def waffle_switch(
    switch_name: str, redirect_to: Any = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return _guard(switch_name, redirect_to, lambda request, name: switch_is_active(name))


def get_response_to_redirect(
    view: Any, *args: Any, **kwargs: Any
) -> HttpResponseRedirect | HttpResponsePermanentRedirect | None:
    try:
        return redirect(reverse(view, args=args, kwargs=kwargs)) if view else None
    except NoReverseMatch:
        return None
