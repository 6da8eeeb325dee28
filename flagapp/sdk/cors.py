"""CORS for the OFREP views (``FLAGAPP["OFREP_CORS_ORIGINS"]``): browsers calling OFREP from
another origin. Split from ``flagapp.sdk.ofrep`` (which re-exports these names).

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is answered
before any key check (browsers send no credentials on it); never
``Access-Control-Allow-Credentials`` (keys travel in headers, not cookies), so ``"*"`` is
safe to allow.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers

from flagapp.conf import settings
from flagapp.sdk.auth import json_response

__all__ = ["CORS_ALLOW_HEADERS", "CORS_EXPOSE_HEADERS", "cors"]

#: Request headers OFREP clients send (the web provider: Authorization or X-API-Key,
#: Content-Type: application/json, If-None-Match on a re-fetch).
CORS_ALLOW_HEADERS = "Authorization, X-API-Key, Content-Type, If-None-Match"
#: Response headers a browser client must read (the bulk ETag, a 429's Retry-After).
CORS_EXPOSE_HEADERS = "ETag, Retry-After"

View = TypeVar("View", bound=Callable[..., Awaitable[HttpResponseBase]])


def _allowed_origin(origin: str | None) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for ``origin``, or None (not allowed)."""
    if not origin:
        return None
    allowed = settings.OFREP_CORS_ORIGINS or ()
    if "*" in allowed:
        return "*"
    wanted = origin.lower()
    for entry in allowed:
        if isinstance(entry, str) and entry.lower() == wanted:
            return origin
    return None


def _vary_on_origin(response: HttpResponseBase) -> None:
    allowed = settings.OFREP_CORS_ORIGINS or ()
    if allowed and "*" not in allowed:
        patch_vary_headers(response, ("Origin",))


def cors(*methods: str) -> Callable[[View], View]:
    """CORS for an async OFREP view answering ``methods`` (``FLAGAPP["OFREP_CORS_ORIGINS"]``).

    A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is
    answered here, before any key check (browsers send no credentials on it): 204 with the
    ``Allow-*`` headers for an allowed origin, 403 naming the setting for another. Every
    other answer of an allowed origin -- refusals included, so a page can read a 401 or a
    429 -- carries ``Access-Control-Allow-Origin`` and exposes ``ETag`` and ``Retry-After``.
    """
    allow_methods = ", ".join((*methods, "OPTIONS"))

    def decorate(view: View) -> View:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            origin = request.headers.get("Origin")
            if request.method == "OPTIONS":
                return _preflight(request, origin, allow_methods)
            response = await view(request, *args, **kwargs)
            allowed = _allowed_origin(origin)
            if allowed is not None:
                response["Access-Control-Allow-Origin"] = allowed
                response["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
            _vary_on_origin(response)
            return response

        return wrapper  # type: ignore[return-value]

    return decorate


def _preflight(request: HttpRequest, origin: str | None, allow_methods: str) -> HttpResponse:
    request.get_host()  # ALLOWED_HOSTS, as for every SDK request (DisallowedHost: 400)
    if not origin or "Access-Control-Request-Method" not in request.headers:
        response = HttpResponse(status=204)  # a plain OPTIONS: what this URL answers
        response["Allow"] = allow_methods
        return response
    allowed = _allowed_origin(origin)
    if allowed is None:
        response = json_response(
            {
                "errorCode": "GENERAL",
                "errorDetails": f"origin {origin!r} may not call OFREP: it is not in "
                "FLAGAPP['OFREP_CORS_ORIGINS']",
            },
            403,
        )
        _vary_on_origin(response)
        return response
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Origin"] = allowed
    response["Access-Control-Allow-Methods"] = allow_methods
    response["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
    response["Access-Control-Max-Age"] = str(int(settings.OFREP_CORS_MAX_AGE))
    _vary_on_origin(response)
    return response
