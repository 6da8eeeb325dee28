"""ASGI entry points for serving a flagapp project, the SDK stream included, with uvicorn.

The SSE stream (``/sdk/v1/stream``) holds a connection open per SDK; under ASGI that costs a
coroutine, under WSGI a worker thread. So flagapp's production shape is ASGI::

    DJANGO_SETTINGS_MODULE=mysite.settings \\
        uvicorn flagapp.asgi:application --workers 4 --http httptools --loop uvloop \\
        --no-access-log --lifespan off

Why a fast path: under ASGI, Django runs every classic (``MiddlewareMixin``) middleware's
hooks through ``sync_to_async`` — a thread hop each, about fifteen per request with the
default middleware — which costs more than the whole SDK request. The SDK and OFREP views
are async and need none of that middleware (no session, user, CSRF or messages: they
authenticate with an SDK key), so :func:`sdk_fast_path` sends ``/sdk/v1/`` and
``/ofrep/v1/`` to a Django handler without middleware and everything else to the project's
normal handler. Host validation (``ALLOWED_HOSTS``) still applies: the SDK views check it.

A project with its own ``asgi.py`` wraps its application the same way::

    from django.core.asgi import get_asgi_application
    from flagapp.asgi import sdk_fast_path

    application = sdk_fast_path(get_asgi_application())

Importing this module configures Django (like any project's asgi.py): import it only as the
server's entry point.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

__all__ = ["SDK_PREFIXES", "LeanASGIHandler", "application", "sdk_fast_path"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SDK_PREFIXES = ("/sdk/v1/", "/ofrep/v1/")


class LeanASGIHandler(ASGIHandler):
    """Django's ASGI handler with an empty middleware chain (URL routing and views only)."""

    def load_middleware(self, is_async: bool = False) -> None:
        # What BaseHandler.load_middleware builds for an empty MIDDLEWARE setting.
        this: Any = self
        get_response = this._get_response_async if is_async else this._get_response
        this._view_middleware = []
        this._template_response_middleware = []
        this._exception_middleware = []
        this._middleware_chain = convert_exception_to_response(get_response)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Without a per-request ThreadSensitiveContext: Django's handler would start a new
        # thread per request for the two sync steps every request has (request_started
        # receivers, response.close). Here they share asgiref's one sync thread; the SDK
        # views do their own work on the event loop and use that thread only when cold.
        if scope["type"] != "http":
            raise ValueError(f"flagapp's SDK handler serves HTTP only, not {scope['type']}")
        await self.handle(scope, receive, send)


def sdk_fast_path(app: ASGIApp, prefixes: tuple[str, ...] = SDK_PREFIXES) -> ASGIApp:
    """Route SDK/OFREP paths to a middleware-free handler, everything else to ``app``."""
    lean = LeanASGIHandler()

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http" and str(scope.get("path", "")).startswith(prefixes):
            await lean(scope, receive, send)
        else:
            await app(scope, receive, send)

    return router


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
django.setup(set_prefix=False)

application = sdk_fast_path(ASGIHandler())
