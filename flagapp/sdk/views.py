"""The SDK API: ``GET /sdk/v1/ruleset``, ``GET /sdk/v1/stream``, ``POST /sdk/v1/events``.

The wire contract is docs/protocol.md; this module implements it. Warm requests make no
database query: the key lookup is cached (``keys``), the ruleset comes from the per-process
snapshot cache (``flagapp.evaluation.get_ruleset``), and its serialized (and gzipped) body is
built once per snapshot version and reused.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from flagapp import metrics
from flagapp.conf import settings
from flagapp.sdk import notifier
from flagapp.sdk.auth import aauthorize, authorize, json_response, survives_database_outage
from flagapp.sdk.keys import (
    AuthFailure,
    KeyInfo,
    NeedsDatabase,
    authenticate_token,
    token_from_headers,
)
from flagapp.sdk.limits import read_capped

__all__ = ["aget_ruleset", "etag_matches", "events", "ruleset", "stream"]

logger = logging.getLogger("flagapp.sdk")


def _get_ruleset(env_key: str) -> Any:
    from flagapp.evaluation import get_ruleset

    return get_ruleset(env_key)


async def aget_ruleset(env_key: str) -> Any:
    """The environment's ruleset from an async view: from memory when this process's copy is
    fresh, else through :func:`flagapp.evaluation.get_ruleset` in a worker thread (it may
    read the shared cache or the database)."""
    from flagapp import evaluation

    if evaluation.is_warm(env_key):
        return evaluation.current_ruleset(env_key)
    return await sync_to_async(_get_ruleset)(env_key)


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak or strong, a list, or ``*``)."""
    if not header:
        return False
    for part in header.split(","):
        candidate = part.strip()
        if candidate == "*":
            return True
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate.strip('"') == etag:
            return True
    return False


class _Body:
    __slots__ = ("etag", "gzipped", "plain", "version")

    def __init__(self, version: int, etag: str, plain: bytes) -> None:
        self.version = version
        self.etag = etag
        self.plain = plain
        self.gzipped = gzip.compress(plain, compresslevel=6, mtime=0)


_bodies: dict[str, _Body] = {}
_bodies_lock = threading.Lock()


def _body_for(env_key: str, rs: Any) -> _Body:
    body = _bodies.get(env_key)
    if body is not None and body.version == rs.version and body.etag == rs.etag:
        return body
    document = dict(rs.raw) if rs.raw else {}
    if not document:  # a ruleset built in code (tests): describe what the engine holds
        document = {"format": rs.format, "environment": rs.environment, "flags": {}}
    document["version"] = rs.version
    document["etag"] = rs.etag
    plain = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    body = _Body(rs.version, rs.etag, plain)
    with _bodies_lock:
        _bodies[env_key] = body
    return body


_rechecked: dict[str, float] = {}


async def _recheck_before_304(env_key: str, rs: Any) -> Any:
    """Before saying "not modified", make sure this process is not the stale one.

    A streaming SDK fetches right after an announcement, possibly from another process than
    the one that announced; if that process has not yet heard of the new version (its Redis
    listener is a few milliseconds late, or the notifier is local), a 304 would leave the SDK
    on the old snapshot until the next change. So a 304 is preceded by a check of the shared
    cache, at most every ``RULESET_RECHECK_SECONDS`` per environment and process — negligible
    at any request rate.
    """
    from flagapp import evaluation

    now = time.monotonic()
    if now - _rechecked.get(env_key, 0.0) < float(settings.RULESET_RECHECK_SECONDS):
        return rs
    _rechecked[env_key] = now
    evaluation.expire(env_key)
    fresh = await sync_to_async(_get_ruleset)(env_key)
    return fresh if fresh is not None else rs


def _quoted(etag: str) -> str:
    return '"' + etag.replace('"', "") + '"'


@survives_database_outage
async def ruleset(request: HttpRequest) -> HttpResponse:
    """The environment's current snapshot (format v1), with ETag/304 and gzip.

    Async so that, under ASGI, a warm request (the common 304) never leaves the event loop.
    """
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    info = await aauthorize(request, "sdk")
    if isinstance(info, HttpResponse):
        return info
    rs = await aget_ruleset(info.environment_key)
    if rs is not None and etag_matches(request.headers.get("If-None-Match"), rs.etag):
        rs = await _recheck_before_304(info.environment_key, rs)
    if rs is None:
        return json_response(
            {"errorCode": "FLAG_NOT_FOUND", "errorDetails": "no snapshot published yet"},
            status=503,
            Retry_After="5",
        )
    body = _body_for(info.environment_key, rs)
    etag = _quoted(body.etag)
    headers = {
        "ETag": etag,
        "Cache-Control": settings.RULESET_CACHE_CONTROL,
        "Vary": "Authorization, X-API-Key, Accept-Encoding",
        "X-Flagapp-Version": str(body.version),
    }
    if etag_matches(request.headers.get("If-None-Match"), body.etag):
        response = HttpResponse(status=304)
    else:
        accepts_gzip = "gzip" in (request.headers.get("Accept-Encoding") or "").lower()
        response = HttpResponse(
            body.gzipped if accepts_gzip else body.plain, content_type="application/json"
        )
        if accepts_gzip:
            response["Content-Encoding"] = "gzip"
    for name, value in headers.items():
        response[name] = value
    return response


# --- stream ----------------------------------------------------------------------------


def _sse(version: int, etag: str, environment: str) -> str:
    data = json.dumps(
        {"environment": environment, "version": version, "etag": etag}, separators=(",", ":")
    )
    return f"id: {version}\nevent: snapshot\ndata: {data}\n\n"


async def _still_valid(token: str | None) -> bool:
    try:
        try:
            authenticate_token(token, db=False)
        except NeedsDatabase:
            await sync_to_async(authenticate_token)(token)
    except AuthFailure:
        return False
    return True


async def _events(info: KeyInfo, token: str | None) -> AsyncIterator[str]:
    env = info.environment_key
    sub = notifier.subscribe(env)
    heartbeat = max(0.05, float(settings.STREAM_HEARTBEAT_SECONDS))
    max_seconds = float(settings.STREAM_MAX_SECONDS)
    deadline = time.monotonic() + max_seconds if max_seconds > 0 else None
    last = -1
    metrics.stream_opened(env)
    try:
        yield f"retry: {int(settings.STREAM_RETRY_MS)}\n\n"
        rs = await aget_ruleset(env)
        if rs is not None:
            last = int(rs.version)
            yield _sse(last, rs.etag, env)
        else:
            yield ": no snapshot published yet\n\n"
        while deadline is None or time.monotonic() < deadline:
            timeout = heartbeat
            if deadline is not None:
                timeout = max(0.01, min(heartbeat, deadline - time.monotonic()))
            try:
                ann = await asyncio.wait_for(sub.queue.get(), timeout=timeout)
            except TimeoutError:
                # A key revoked while its stream is open: end the stream; the reconnect is
                # refused (401) and the SDK stops.
                if not await _still_valid(token):
                    return
                # No announcement: say we are alive, and check the version ourselves in case
                # an announcement was lost (no Redis, a dropped connection).
                rs = await aget_ruleset(env)
                if rs is not None and int(rs.version) > last:
                    last = int(rs.version)
                    yield _sse(last, rs.etag, env)
                else:
                    yield ": heartbeat\n\n"
                continue
            if ann.version > last:
                last = ann.version
                yield _sse(ann.version, ann.etag, env)
    finally:
        notifier.unsubscribe(sub)
        metrics.stream_closed(env)


@survives_database_outage
async def stream(request: HttpRequest) -> HttpResponseBase:
    """Server-sent events announcing each new snapshot version of the key's environment.

    Needs an ASGI server (uvicorn): under WSGI a stream would hold a worker thread per client.
    """
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET"})
    info = await aauthorize(request, "sdk")
    if isinstance(info, HttpResponse):
        return info
    response = StreamingHttpResponse(
        _events(info, token_from_headers(request.headers)), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


# --- events ----------------------------------------------------------------------------


@csrf_exempt
@require_POST
@survives_database_outage
def events(request: HttpRequest) -> HttpResponse:
    """Batched tracking, exposure and evaluation events: validated per event, stored in one
    transaction, once per ``X-Flagapp-Batch-Id`` (``flagapp.sdk.events``)."""
    info = authorize(request, "events")
    if isinstance(info, HttpResponse):
        return info
    from flagapp.sdk import events as events_module

    batch_id = request.headers.get("X-Flagapp-Batch-Id")
    if batch_id is not None and not events_module.valid_batch_id(batch_id):
        message = "X-Flagapp-Batch-Id must be 1 to 64 characters of A-Z, a-z, 0-9, _ or -"
        return json_response({"errors": [message]}, 400)
    body = read_capped(request)
    if isinstance(body, HttpResponse):
        return body
    try:
        batch = events_module.parse_batch(body, max_events=int(settings.EVENTS_MAX_BATCH))
    except events_module.TooMany as exc:
        metrics.batch_outcome(info.environment_key, "too_large")
        return json_response({"errors": [str(exc)]}, 413)
    except events_module.Invalid as exc:
        metrics.batch_outcome(info.environment_key, "invalid")
        return json_response({"errors": [str(exc)]}, 400)
    answer, replayed = events_module.store(
        info.environment_key,
        batch,
        key_id=info.key_id,
        source=f"sdk:{info.public_id}",
        batch_id=batch_id,
    )
    metrics.batch_outcome(info.environment_key, "replayed" if replayed else "stored")
    response = json_response(answer, status=202)
    if replayed:
        response["X-Flagapp-Batch-Replayed"] = "true"
    return response
