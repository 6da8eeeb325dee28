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
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from flagapp import metrics
from flagapp.conf import settings
from flagapp.sdk import notifier, streaming
from flagapp.sdk.auth import aauthorize, authorize, json_response, survives_database_outage
from flagapp.sdk.keys import (
    AuthFailure,
    KeyInfo,
    NeedsDatabase,
    authenticate_token,
    token_from_headers,
)
from flagapp.sdk.limits import read_capped
from flagapp.sdk.rulesets import aget_ruleset
from flagapp.sdk.rulesets import get_ruleset as _get_ruleset

__all__ = [
    "DELTA_CONTENT_TYPE",
    "DELTA_IM",
    "adelta_body",
    "aget_ruleset",
    "etag_matches",
    "events",
    "forget_deltas",
    "ruleset",
    "stream",
    "wants_delta",
]

logger = logging.getLogger("flagapp.sdk")


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
    """One answer body, built once per version and shared by every request of the process.
    Gzipped on first need only: most answers after a change are 304s and deltas, and
    compressing a 10,000-flag document takes tens of milliseconds of the event loop."""

    __slots__ = ("_gzipped", "_make", "_plain", "etag", "sse", "version")

    def __init__(self, version: int, etag: str, plain: bytes | Callable[[], bytes]) -> None:
        self.version = version
        self.etag = etag
        self._plain = plain if isinstance(plain, bytes) else None
        #: builds the body on first need (a 304 needs only version and etag)
        self._make = None if isinstance(plain, bytes) else plain
        self._gzipped: bytes | None = None
        self.sse: bytes | None = None  # a delta's stream event (built once, for every stream)

    @property
    def plain(self) -> bytes:
        data = self._plain
        if data is None:  # a race builds it twice, with the same result
            assert self._make is not None
            data = self._plain = self._make()
        return data

    @property
    def gzipped(self) -> bytes:
        data = self._gzipped
        if data is None:  # a race computes it twice, with the same result
            data = self._gzipped = gzip.compress(self.plain, compresslevel=6, mtime=0)
        return data


_bodies: dict[str, _Body] = {}
_bodies_lock = threading.Lock()


def _document(rs: Any) -> dict[str, Any]:
    """The document served for ``rs``: its validated JSON, with its version and etag."""
    document = dict(rs.raw) if rs.raw else {}
    if not document:  # a ruleset built in code (tests): describe what the engine holds
        document = {"format": rs.format, "environment": rs.environment, "flags": {}}
    document["version"] = rs.version
    document["etag"] = rs.etag
    return document


def _body_for(env_key: str, rs: Any) -> _Body:
    from flagapp import evaluation

    body = _bodies.get(env_key)
    if body is not None and body.version == rs.version and body.etag == rs.etag:
        return body

    def plain() -> bytes:
        text = evaluation.document_text(env_key, rs)  # the stored snapshot, as stored
        if text is not None:
            return text.encode("utf-8")
        return json.dumps(_document(rs), separators=(",", ":"), ensure_ascii=False).encode()

    body = _Body(rs.version, rs.etag, plain)
    with _bodies_lock:
        _bodies[env_key] = body
    return body


# --- deltas (docs/protocol.md, "Deltas") ------------------------------------------------

#: The instance manipulation a client names in ``A-IM`` to accept deltas (RFC 3229 style).
DELTA_IM = "flagapp-delta"
DELTA_CONTENT_TYPE = "application/vnd.flagapp.delta+json"
_DELTA_CACHE_SIZE = 64

#: (environment, base etag, new etag) -> the delta body, or None (serve the full document)
_deltas: OrderedDict[tuple[str, str, str], _Body | None] = OrderedDict()
#: the computation under way per (event loop, key): a herd of requests waits for one
_pending: dict[tuple[Any, ...], asyncio.Future[_Body | None]] = {}


def wants_delta(headers: Any) -> bool:
    """Whether the request opts in to deltas: ``A-IM: flagapp-delta`` (a list may name more)."""
    value = headers.get("A-IM") or ""
    return any(part.split(";")[0].strip().lower() == DELTA_IM for part in value.split(","))


def _base_etag(header: str | None) -> str | None:
    """The first etag of ``If-None-Match`` (the snapshot the client holds), unquoted."""
    if not header:
        return None
    first = header.split(",")[0].strip()
    if first.startswith("W/"):
        first = first[2:]
    first = first.strip('"')
    return first if first and first != "*" else None


def _delta_body(env_key: str, base: str, rs: Any, full: _Body) -> _Body | None:
    """The delta from ``base`` to ``rs`` as a body, or None (unknown base, or not smaller
    than the full document). May query the database (an unknown base); cached."""
    from flagapp import publishing

    key = (env_key, base, full.etag)
    with _bodies_lock:
        if key in _deltas:
            return _deltas[key]
    result: _Body | None = None
    if rs.raw:  # a ruleset built in code has no document to diff
        delta = publishing.delta_from(
            env_key, base, _document(rs), build=getattr(rs, "build", None)
        )
        if delta is not None:
            plain = json.dumps(delta, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            if len(plain) < len(full.plain):
                result = _Body(rs.version, rs.etag, plain)
    with _bodies_lock:
        _deltas[key] = result
        while len(_deltas) > _DELTA_CACHE_SIZE:
            _deltas.popitem(last=False)
    return result


async def adelta_body(env_key: str, base: str, rs: Any) -> _Body | None:
    """:func:`_delta_body` from the event loop: a cached answer inline, else one worker-thread
    computation shared by every request and stream waiting for the same delta."""
    full = _body_for(env_key, rs)
    key = (env_key, base, full.etag)
    if key in _deltas:
        return _deltas[key]
    return await _shared(key, lambda: sync_to_async(_delta_body)(env_key, base, rs, full))


async def _shared(
    key: tuple[str, ...], start: Callable[[], Awaitable[_Body | None]]
) -> _Body | None:
    """Await the computation under way for ``key`` in this event loop, or start it: a herd
    of requests or streams needing the same thing runs it once."""
    loop_key = (id(asyncio.get_running_loop()), *key)
    future = _pending.get(loop_key)
    if future is None:
        future = asyncio.ensure_future(start())
        _pending[loop_key] = future
        future.add_done_callback(lambda _f: _pending.pop(loop_key, None))
    return await asyncio.shield(future)


def forget_deltas() -> None:
    """Drop the delta bodies and the digest history of this process (tests)."""
    from flagapp import publishing

    with _bodies_lock:
        _deltas.clear()
    publishing.forget_deltas()


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
    accepts_gzip = "gzip" in (request.headers.get("Accept-Encoding") or "").lower()
    if etag_matches(request.headers.get("If-None-Match"), body.etag):
        response = HttpResponse(status=304)
    elif wants_delta(request.headers) and (
        base := _base_etag(request.headers.get("If-None-Match"))
    ):
        delta = await adelta_body(info.environment_key, base, rs)
        if delta is not None:
            response = HttpResponse(
                delta.gzipped if accepts_gzip else delta.plain,
                content_type=DELTA_CONTENT_TYPE,
                status=226,
            )
            if accepts_gzip:
                response["Content-Encoding"] = "gzip"
            response["IM"] = DELTA_IM
            response["Delta-Base"] = _quoted(base)
            headers["Vary"] += ", A-IM, If-None-Match"
        else:
            response = _full(body, accepts_gzip)
    else:
        response = _full(body, accepts_gzip)
    for name, value in headers.items():
        response[name] = value
    return response


def _full(body: _Body, accepts_gzip: bool) -> HttpResponse:
    response = HttpResponse(
        body.gzipped if accepts_gzip else body.plain, content_type="application/json"
    )
    if accepts_gzip:
        response["Content-Encoding"] = "gzip"
    return response


# --- stream ----------------------------------------------------------------------------


#: (environment, version, etag) -> the plain announcement's bytes: built once per change and
#: shared by every stream of the process (a few recent versions kept)
_plain_events: OrderedDict[tuple[str, int, str], bytes] = OrderedDict()


def _sse(version: int, etag: str, environment: str) -> bytes:
    key = (environment, version, etag)
    event = _plain_events.get(key)
    if event is None:
        data = json.dumps(
            {"environment": environment, "version": version, "etag": etag},
            separators=(",", ":"),
        )
        event = f"id: {version}\nevent: snapshot\ndata: {data}\n\n".encode()
        _plain_events[key] = event
        while len(_plain_events) > _DELTA_CACHE_SIZE:
            _plain_events.popitem(last=False)
    return event


def _sse_with_delta(version: int, etag: str, environment: str, delta: _Body) -> bytes:
    """An announcement carrying its delta inline (opted-in streams); built once per delta."""
    if delta.sse is None:
        head = json.dumps(
            {"environment": environment, "version": version, "etag": etag}, separators=(",", ":")
        )
        data = head[:-1] + ',"delta":' + delta.plain.decode("utf-8") + "}"
        delta.sse = f"id: {version}\nevent: snapshot\ndata: {data}\n\n".encode()
    return delta.sse


def _published_delta(ann: notifier.Announcement, base: str) -> _Body | None:
    """The delta the publisher sent with ``ann`` when it starts from ``base`` (cached: every
    stream of the process shares one body and one event text)."""
    if ann.delta is None or ann.base != base:
        return None
    key = (ann.environment, base, ann.etag)
    body = _deltas.get(key)
    if body is None:
        body = _Body(ann.version, ann.etag, ann.delta.encode("utf-8"))
        with _bodies_lock:
            _deltas[key] = body
            while len(_deltas) > _DELTA_CACHE_SIZE:
                _deltas.popitem(last=False)
    return body


async def _announcement(
    env: str,
    version: int,
    etag: str,
    base: str | None,
    ann: notifier.Announcement | None = None,
) -> bytes:
    """The event announcing ``version``; with the delta from ``base`` inline when the stream
    opted in (``base`` set), the delta is known and it is small (``STREAM_DELTA_MAX_BYTES``).
    Any failure to build the delta falls back to the plain announcement (the client fetches).

    Every stream of a process waiting for the same delta shares one computation."""
    if base is None or base == etag:
        return _sse(version, etag, env)
    key = (env, base, etag)
    try:
        published = _published_delta(ann, base) if ann is not None else None
        if published is not None:
            delta: _Body | None = published
        elif key in _deltas:
            delta = _deltas[key]
        else:
            delta = await _shared(("announce", *key), lambda: _announced_delta(env, base, etag))
    except Exception:
        logger.warning("could not build the delta %s -> %s of %s", base, etag, env, exc_info=True)
        return _sse(version, etag, env)
    if delta is None or len(delta.plain) > int(settings.STREAM_DELTA_MAX_BYTES):
        return _sse(version, etag, env)
    return _sse_with_delta(version, etag, env, delta)


async def _announced_delta(env: str, base: str, etag: str) -> _Body | None:
    rs = await aget_ruleset(env)
    if rs is None or rs.etag != etag:  # moved on already: the next event says so
        return None
    return await adelta_body(env, base, rs)


async def _still_valid(token: str | None) -> bool:
    try:
        try:
            authenticate_token(token, db=False)
        except NeedsDatabase:
            await sync_to_async(authenticate_token)(token)
    except AuthFailure:
        return False
    return True


class _SnapshotStream(streaming.Stream):
    """``/sdk/v1/stream``: ``event: snapshot`` per version; with ``deltas`` (the client sent
    ``A-IM: flagapp-delta``) the delta from the version it announced last, inline."""

    def __init__(self, info: KeyInfo, token: str | None, deltas: bool) -> None:
        super().__init__(info.environment_key)
        self.token = token
        self.deltas = deltas
        #: the etag this stream announced last: the base of the next inline delta
        self.sent: str | None = None

    async def first(self, rs: Any) -> bytes:
        if rs is None:
            return b": no snapshot published yet\n\n"
        self.sent = rs.etag
        return _sse(int(rs.version), rs.etag, self.environment)

    async def event(self, version: int, etag: str, ann: notifier.Announcement | None) -> bytes:
        base = self.sent if self.deltas else None
        self.sent = etag
        return await _announcement(self.environment, version, etag, base, ann)

    async def still_valid(self) -> bool:
        return await _still_valid(self.token)

    def opened(self) -> None:
        metrics.stream_opened(self.environment)

    def closed(self) -> None:
        metrics.stream_closed(self.environment)


def _events(info: KeyInfo, token: str | None, deltas: bool = False) -> AsyncIterator[bytes]:
    return streaming.run(_SnapshotStream(info, token, deltas))


@survives_database_outage
async def stream(request: HttpRequest) -> HttpResponseBase:
    """Server-sent events announcing each new snapshot version of the key's environment.

    Needs an ASGI server (uvicorn): under WSGI a stream would hold a worker thread per client.
    """
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET"})
    info = await aauthorize(request, "stream")
    if isinstance(info, HttpResponse):
        return info
    response = StreamingHttpResponse(
        _events(info, token_from_headers(request.headers), wants_delta(request.headers)),
        content_type="text/event-stream",
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
