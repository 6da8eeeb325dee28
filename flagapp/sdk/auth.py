"""One function every SDK/OFREP view starts with: who is calling, and may they, now?

Order matters: the key is resolved first (a dict lookup when warm) so the rate limit can be
per key; a request without a valid key is limited per client address instead, so a flood of
bad keys is refused with 429 before it costs anything but a cache read.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

from flagapp.sdk import notifier, ratelimit
from flagapp.sdk.keys import (
    CLIENT,
    AuthFailure,
    KeyInfo,
    NeedsDatabase,
    authenticate_token,
    token_from_headers,
)
from flagapp.sdk.limits import declared_too_large

__all__ = [
    "CLIENT_KEY_REFUSED",
    "CLIENT_SCOPES",
    "aauthorize",
    "authorize",
    "database_unavailable",
    "json_response",
    "survives_database_outage",
]

logger = logging.getLogger("flagapp.sdk")

#: The ``authorize`` scopes a client-side key (``SdkKey.scope == "client"``) may use.
CLIENT_SCOPES = frozenset({"ofrep"})
CLIENT_KEY_REFUSED = (
    "this is a client-side SDK key (scope 'client'): it may call OFREP (/ofrep/v1/...) only; "
    "the ruleset, stream and events endpoints need a server key"
)

#: Seconds a client is asked to wait (``Retry-After``) when the database is unreachable.
OUTAGE_RETRY_AFTER = 5

V = TypeVar("V", bound=Callable[..., Any])


def json_bytes(payload: Any) -> bytes:
    """UTF-8 JSON; text with no UTF-8 form (a lone surrogate echoed back from a client's
    field name) is escaped as ``\\udXXX`` instead of failing the response with a 500."""
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def json_response(payload: Any, status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(json_bytes(payload), content_type="application/json", status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _client_address(request: HttpRequest) -> str:
    try:
        from flagapp.context import client_ip

        return client_ip(request) or "unknown"
    except Exception:  # pragma: no cover - context module is part of the core app
        return str(request.META.get("REMOTE_ADDR") or "unknown")


def _refusal(status: int, detail: str, retry_after: int = 0) -> HttpResponse:
    payload = {"errorCode": "GENERAL", "errorDetails": detail}
    response = json_response(payload, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="flagapp"'
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def authorize(request: HttpRequest, scope: str, *, db: bool = True) -> KeyInfo | HttpResponse:
    """The caller's key, or the response refusing it (413, 401, 403, 429 or 503).

    A client-side key (scope ``client``) passes only for the scopes in ``CLIENT_SCOPES``
    (OFREP); elsewhere it is refused with 403 and ``CLIENT_KEY_REFUSED``.

    An explicit ``?environment=`` that is not the key's environment is refused with 403: a
    client configured for one environment must never be served another's flags.
    With ``db=False`` it raises :class:`~flagapp.sdk.keys.NeedsDatabase` rather than query.
    """
    # Body caps first: an over-cap body is refused from its Content-Length, unread and
    # before any key lookup (flagapp.sdk.limits).
    refused = declared_too_large(request)
    if refused is not None:
        return refused
    # ALLOWED_HOSTS, as CommonMiddleware would check it (the ASGI fast path has no
    # middleware); DisallowedHost becomes a 400.
    request.get_host()
    try:
        info = authenticate_token(token_from_headers(request.headers), db=db)
    except AuthFailure as failure:
        decision = ratelimit.check(scope, "ip:" + _client_address(request))
        if not decision.allowed:
            return _refusal(429, "rate limit exceeded", decision.retry_after)
        return _refusal(failure.status, failure.detail, failure.retry_after)
    if info.scope == CLIENT and scope not in CLIENT_SCOPES:
        return _refusal(403, CLIENT_KEY_REFUSED)
    # In redis mode, make sure this process hears about new snapshots (and revocations).
    notifier.ensure_listener()
    decision = ratelimit.check(scope, f"key:{info.key_id}")
    if not decision.allowed:
        return _refusal(429, "rate limit exceeded", decision.retry_after)
    wanted = request.GET.get("environment")
    if wanted and wanted != info.environment_key:
        return _refusal(403, "this SDK key belongs to another environment")
    return info


async def aauthorize(request: HttpRequest, scope: str) -> KeyInfo | HttpResponse:
    """:func:`authorize` for async views: inline when the key is cached (no ORM, at most a
    rate-limit store round trip), in a worker thread when it needs the database."""
    try:
        return authorize(request, scope, db=False)
    except NeedsDatabase:
        return await sync_to_async(authorize)(request, scope)


def database_unavailable(detail: str = "the database is unavailable; retry later") -> HttpResponse:
    """503 + ``Retry-After`` with the JSON error shape of the SDK endpoints."""
    return _refusal(503, detail, OUTAGE_RETRY_AFTER)


def survives_database_outage(view: V) -> V:
    """A database error anywhere in an SDK view becomes a JSON 503 with ``Retry-After``.

    The safety net behind stale-while-error (``keys``, ``flagapp.evaluation``): an SDK
    retries a 503 with backoff, while a 500 reads as a server bug and, for events, made the
    provider resend batches that had been half stored.
    """
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await view(*args, **kwargs)
            except DatabaseError:
                logger.warning("database error in %s: answered 503", view.__name__, exc_info=True)
                return database_unavailable()

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except DatabaseError:
            logger.warning("database error in %s: answered 503", view.__name__, exc_info=True)
            return database_unavailable()

    return wrapper  # type: ignore[return-value]
