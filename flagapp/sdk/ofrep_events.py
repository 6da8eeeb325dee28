"""OFREP ``eventStreams`` (ADR-0008): ``GET /ofrep/v1/event-stream?channel=...``, the SSE
stream a bulk answer advertises. Split from ``flagapp.sdk.ofrep`` (which re-exports
``event_stream`` and ``stream_channel``); the loop itself is ``flagapp.sdk.streaming``'s.

Browsers' ``EventSource`` sends no ``Authorization``, so the URL carries a ``channel``
signed with ``SECRET_KEY`` naming the key's public id and environment (no secret inside;
it stops working when the key is revoked). Each new snapshot is one ``event: message`` with
``data: {"type": "refetchEvaluation", "etag": <snapshot etag>}`` and ``id`` = the version,
so ``Last-Event-ID`` replays a missed change.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from asgiref.sync import sync_to_async
from django.core import signing
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse

from flagapp.conf import settings
from flagapp.sdk import keys, notifier, ratelimit, streaming
from flagapp.sdk.auth import json_response, survives_database_outage
from flagapp.sdk.cors import cors

__all__ = ["event_stream", "event_streams", "stream_channel"]

_CHANNEL_SALT = "flagapp.ofrep.event-stream"


def stream_channel(info: keys.KeyInfo) -> str:
    """The signed ``channel`` of ``info``'s event stream URL: the key's public id and its
    environment, signed with ``SECRET_KEY`` (no secret inside; the same for every answer,
    so a client keeps its connection across re-fetches)."""
    signer = signing.Signer(salt=_CHANNEL_SALT)  # no timestamp: the same URL every time
    return signer.sign_object([info.public_id, info.environment_key])


def event_streams(info: keys.KeyInfo) -> dict[str, Any]:
    if not settings.OFREP_EVENT_STREAMS:
        return {}
    uri = f"{reverse('flagapp:ofrep-event-stream')}?channel={quote(stream_channel(info), safe='')}"
    # ``endpoint`` (not ``url``): the client joins it to the origin it was configured with,
    # so the answer never depends on the Host header or a proxy's view of it.
    return {"eventStreams": [{"type": "sse", "endpoint": {"requestUri": uri}}]}


def _sse_refetch(version: int, etag: str) -> bytes:
    data = json.dumps({"type": "refetchEvaluation", "etag": etag}, separators=(",", ":"))
    return f"id: {version}\nevent: message\ndata: {data}\n\n".encode()


async def _still_active(public_id: str) -> keys.KeyInfo | None:
    try:
        return keys.active_key(public_id, db=False)
    except keys.NeedsDatabase:
        return await sync_to_async(keys.active_key)(public_id)


class _RefetchStream(streaming.Stream):
    """``/ofrep/v1/event-stream``: one ``refetchEvaluation`` per new snapshot; on connect one
    for a change the client missed while away (``Last-Event-ID`` older than the current
    version), else a ``: connected`` comment."""

    def __init__(self, env: str, public_id: str, last_seen: int | None) -> None:
        super().__init__(env)
        self.public_id = public_id
        self.last_seen = last_seen

    async def first(self, rs: Any) -> bytes:
        if rs is not None and self.last_seen is not None and int(rs.version) > self.last_seen:
            return _sse_refetch(int(rs.version), rs.etag)
        return b": connected\n\n"

    async def event(self, version: int, etag: str, ann: notifier.Announcement | None) -> bytes:
        return _sse_refetch(version, etag)

    async def still_valid(self) -> bool:
        return await _still_active(self.public_id) is not None


def _refetch_events(env: str, public_id: str, last_seen: int | None) -> AsyncIterator[bytes]:
    """One ``refetchEvaluation`` per new snapshot of ``env``, from the notifier that feeds
    ``/sdk/v1/stream`` (the one loop of ``flagapp.sdk.streaming``)."""
    return streaming.run(_RefetchStream(env, public_id, last_seen))


def _stream_refusal(status: int, detail: str) -> HttpResponse:
    response = json_response({"errorCode": "GENERAL", "errorDetails": detail}, status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="flagapp"'
    return response


@cors("GET")
@survives_database_outage
async def event_stream(request: HttpRequest) -> HttpResponseBase:
    """``GET /ofrep/v1/event-stream?channel=...``: the SSE stream a bulk answer's
    ``eventStreams`` names. Authenticated by the signed channel (an ``EventSource`` cannot
    send headers); the key must still be active, and its rate limit applies per connection.
    Needs ASGI, like ``/sdk/v1/stream``."""
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET, OPTIONS"})
    request.get_host()
    try:
        signer = signing.Signer(salt=_CHANNEL_SALT)
        public_id, env = signer.unsign_object(request.GET.get("channel", ""))
    except (signing.BadSignature, ValueError, TypeError):
        return _stream_refusal(
            401,
            "channel is missing or was not signed by this server: connect to the URL a bulk "
            "evaluation's eventStreams names",
        )
    info = await _still_active(str(public_id))
    if info is None or info.environment_key != env:
        return _stream_refusal(401, "the SDK key of this event stream was revoked")
    decision = ratelimit.check("ofrep", f"key:{info.key_id}")
    if not decision.allowed:
        refusal = _stream_refusal(429, "rate limit exceeded")
        refusal["Retry-After"] = str(decision.retry_after)
        return refusal
    notifier.ensure_listener()
    last_seen: int | None = None
    raw = request.headers.get("Last-Event-ID", "").strip()
    if raw.isdigit():
        last_seen = int(raw)
    response = StreamingHttpResponse(
        _refetch_events(env, info.public_id, last_seen), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"
    return response
