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
Body caps (``flagapp.sdk.limits``: ``SDK_MAX_BODY_BYTES``, ``EVENTS_MAX_BODY_BYTES``) are
checked here from ``Content-Length`` before the body is read, and while a chunked body is
read: an over-cap request gets a JSON 413 and costs neither the body nor a key lookup.

A project with its own ``asgi.py`` wraps its application the same way::

    from django.core.asgi import get_asgi_application
    from flagapp.asgi import sdk_fast_path

    application = sdk_fast_path(get_asgi_application())

``flagapp.asgi:application`` configures Django on first access (like any project's asgi.py,
it needs ``DJANGO_SETTINGS_MODULE``); importing ``sdk_fast_path`` alone does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import django
from asgiref.sync import sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import set_script_prefix

__all__ = ["SDK_PREFIXES", "LeanASGIHandler", "get_application", "sdk_fast_path"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SDK_PREFIXES = ("/sdk/v1/", "/ofrep/v1/")
#: The long-lived answers (server-sent events): only those watch for the client leaving.
STREAM_SUFFIXES = ("/stream", "/event-stream")


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
        # thread per request. Sync work (a cold key or snapshot load) shares asgiref's one
        # sync thread; warm requests never leave the event loop.
        if scope["type"] != "http":
            raise ValueError(f"flagapp's SDK handler serves HTTP only, not {scope['type']}")
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Django's ``ASGIHandler.handle`` minus two thread hops per request.

        Django sends ``request_started`` and closes the response (which sends
        ``request_finished``) through ``sync_to_async`` on every request. Their receivers
        are bookkeeping — database connection hygiene, flushing buffered statistics — that
        the SDK views, which do not touch the database when warm, need now and then, not per
        request. So this handler closes responses without the signal and sends
        ``request_finished`` from the sync thread at most every ``FINISH_INTERVAL`` seconds.
        """
        this: Any = self
        from flagapp.sdk.limits import body_cap

        cap, setting = body_cap(str(scope.get("path", "")))
        if _declared_length(scope) > cap:  # refused before a byte of the body is read
            await _send_too_large(send, cap, setting)
            return
        try:
            body_file = await self._read_body_capped(receive, cap)
        except RequestAborted:
            return
        except _TooLarge:  # a chunked body (no Content-Length) that grew over the cap
            await _send_too_large(send, cap, setting)
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = this.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await this.send_response(error_response, send)
            _close_quietly(error_response)
            return

        async def process_request() -> Any:
            response = await this.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # client gone during send
                await this.send_response(response, send)
            return response

        if not str(scope.get("path", "")).endswith(STREAM_SUFFIXES):
            # A short answer (a 304, a ruleset, an evaluation): nothing to cancel when the
            # client leaves, so no disconnect listener (two tasks and a wait per request).
            try:
                response = await process_request()
            finally:
                body_file.close()
            _close_quietly(response)
            await self._maybe_finish()
            return
        tasks = [
            asyncio.create_task(this.listen_for_disconnect(receive)),
            asyncio.create_task(process_request()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(asyncio.CancelledError):
            _close_quietly(tasks[1].result())
        body_file.close()
        await self._maybe_finish()

    async def _read_body_capped(self, receive: Receive, cap: int) -> Any:
        """Django's ``read_body`` that stops at ``cap`` bytes (raises :class:`_TooLarge`)."""
        from django.conf import settings as django_settings

        body_file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - handed to the request
            max_size=django_settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b"
        )
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            if "body" in message:
                size += len(message["body"])
                if size > cap:
                    body_file.close()
                    raise _TooLarge
                body_file.write(message["body"])
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file

    FINISH_INTERVAL = 1.0
    _next_finish = 0.0

    async def _maybe_finish(self) -> None:
        now = time.monotonic()
        if now < LeanASGIHandler._next_finish:
            return
        LeanASGIHandler._next_finish = now + self.FINISH_INTERVAL
        await sync_to_async(signals.request_finished.send)(sender=self.__class__)


class _TooLarge(Exception):
    """A request body grew over its cap while being read."""


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _send_too_large(send: Send, cap: int, setting: str) -> None:
    from flagapp.sdk.limits import too_large_body

    body = too_large_body(cap, setting)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _close_quietly(response: Any) -> None:
    """``HttpResponseBase.close`` without its ``request_finished`` signal."""
    for closer in getattr(response, "_resource_closers", ()):
        with contextlib.suppress(Exception):
            closer()
    if hasattr(response, "_resource_closers"):
        response._resource_closers.clear()
    response.closed = True


def sdk_fast_path(app: ASGIApp, prefixes: tuple[str, ...] = SDK_PREFIXES) -> ASGIApp:
    """Route SDK/OFREP paths to a middleware-free handler, everything else to ``app``."""
    lean = LeanASGIHandler()
    _log_asgi_connection_warnings()

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http" and str(scope.get("path", "")).startswith(prefixes):
            await lean(scope, receive, send)
        else:
            await app(scope, receive, send)

    return router


def _log_asgi_connection_warnings() -> None:
    """Serving under ASGI now: log flagapp.W010 (connections that leak under ASGI), which
    ``manage.py check`` only sees when ``ASGI_APPLICATION`` is set."""
    from flagapp.checks import asgi_connection_messages

    for message in asgi_connection_messages(under_asgi=True):
        logging.getLogger("flagapp").warning("%s (%s) %s", message.msg, message.id, message.hint)


_application: ASGIApp | None = None


def get_application() -> ASGIApp:
    """The project's ASGI application behind :func:`sdk_fast_path` (configures Django)."""
    global _application
    if _application is None:
        django.setup(set_prefix=False)
        _application = sdk_fast_path(ASGIHandler())
    return _application


def __getattr__(name: str) -> Any:
    # ``flagapp.asgi:application`` for the server, built on first access (PEP 562), so that
    # importing ``sdk_fast_path`` into a project's own asgi.py has no side effect.
    if name == "application":
        return get_application()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
