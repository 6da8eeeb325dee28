"""One function every SDK/OFREP view starts with: who is calling, and may they, now?

Order matters: the key is resolved first (a dict lookup when warm) so the rate limit can be
per key; a request without a valid key is limited per client address instead, so a flood of
bad keys is refused with 429 before it costs anything but a cache read.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from flagapp.sdk import notifier, ratelimit
from flagapp.sdk.keys import (
    AuthFailure,
    KeyInfo,
    NeedsDatabase,
    authenticate_token,
    token_from_headers,
)

__all__ = ["aauthorize", "authorize", "json_response"]


def json_response(payload: Any, status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(
        json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
        content_type="application/json",
        status=status,
    )
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
    """The caller's key, or the response refusing it (401, 403 or 429).

    An explicit ``?environment=`` that is not the key's environment is refused with 403: a
    client configured for one environment must never be served another's flags.
    With ``db=False`` it raises :class:`~flagapp.sdk.keys.NeedsDatabase` rather than query.
    """
    # ALLOWED_HOSTS, as CommonMiddleware would check it (the ASGI fast path has no
    # middleware); DisallowedHost becomes a 400.
    request.get_host()
    try:
        info = authenticate_token(token_from_headers(request.headers), db=db)
    except AuthFailure as failure:
        decision = ratelimit.check(scope, "ip:" + _client_address(request))
        if not decision.allowed:
            return _refusal(429, "rate limit exceeded", decision.retry_after)
        return _refusal(failure.status, failure.detail)
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
