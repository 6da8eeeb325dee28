"""OFREP: ``POST /ofrep/v1/evaluate/flags/{key}`` and bulk ``POST /ofrep/v1/evaluate/flags``.

Implements open-feature/protocol ``service/openapi.yaml`` for strict clients (docs/protocol.md):

* success ``{"key", "value", "reason", "variant", "metadata"}``; only the reasons of the
  schema's success enum (STATIC, TARGETING_MATCH, SPLIT, DISABLED, UNKNOWN): DEFAULT goes out
  as UNKNOWN and PREREQUISITE_FAILED as DISABLED, the engine's reason in
  ``metadata.flagappReason``;
* "serve the caller's default" (disabled, prerequisite failed, null fallthrough) omits
  ``value`` — the published Python client (openfeature-provider-ofrep) then returns the
  caller's default — but still carries ``variant`` (null): that client reads
  ``data["variant"]`` unconditionally and turns a missing key into a GENERAL error
  (docs/interop.md, tests/interop/test_ofrep_schema.py);
* an ``object`` flag whose value is a JSON array is a GENERAL evaluation failure: OFREP object
  values are JSON objects (``objectFlag``), and an array would validate as no success shape;
* per-flag ``metadata`` never holds ``snapshotVersion`` (it changes with every publish, so a
  client comparing bulk answers would see every flag change); the bulk response carries it in
  its flag-set ``metadata``;
* float flags are serialised as floats (``1.0``, never ``1``), integer flags as integers;
* errors: 404 ``FLAG_NOT_FOUND`` and 400 (``TARGETING_KEY_MISSING``, ``INVALID_CONTEXT``,
  ``PARSE_ERROR``, ``GENERAL``) always with ``key``, ``errorCode`` and ``errorDetails``;
  a context with ``NaN``/``Infinity``, a NUL character or nesting deeper than
  ``SDK_JSON_MAX_DEPTH`` is ``INVALID_CONTEXT`` naming the field; 413 over
  ``SDK_MAX_BODY_BYTES`` (``flagapp.sdk.limits``);
* a context without ``targetingKey`` is accepted (only a rollout needs it);
* 401/403 for keys, 429 with ``Retry-After`` (seconds) for rate limits;
* bulk answers carry an ``ETag`` over (snapshot, context) and honour ``If-None-Match``;
* bulk answers advertise an SSE ``eventStreams`` entry (OFREP ADR-0008, the protocol's
  February 2026 addition; ``FLAGAPP["OFREP_EVENT_STREAMS"]``): ``GET /ofrep/v1/event-stream``
  with a signed ``channel`` naming the key and environment (browsers' ``EventSource`` sends
  no ``Authorization``; the URL holds no secret and stops working when the key is revoked).
  Each new snapshot is one ``event: message`` with ``data: {"type": "refetchEvaluation",
  "etag": <snapshot etag>}`` (``id`` = the snapshot version, so ``Last-Event-ID`` replays a
  missed change); the re-fetch's ``flagConfigEtag`` makes a process that has not yet heard of
  that snapshot look again before answering (no stale 304);
* CORS for browsers (``FLAGAPP["OFREP_CORS_ORIGINS"]``): allowed origins get
  ``Access-Control-Allow-Origin`` and the ``ETag`` exposed; a preflight ``OPTIONS`` answers
  204 with the methods and headers OFREP clients send (``Authorization``, ``X-API-Key``,
  ``Content-Type``, ``If-None-Match``); never ``Access-Control-Allow-Credentials`` (keys
  travel in headers, not cookies), so ``"*"`` is safe to allow.

The hot path (warm) is: cached key lookup, a token-bucket cache read, the per-process
ruleset, one engine call. No database query.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from flagapp.conf import settings
from flagapp.sdk import limits
from flagapp.sdk.auth import aauthorize, json_response, survives_database_outage
from flagapp.sdk.cors import CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, cors
from flagapp.sdk.ofrep_events import event_stream, event_streams, stream_channel
from flagapp.sdk.views import aget_ruleset, etag_matches
from openfeature_provider.engine import ErrorCode, Reason, Resolution, Ruleset
from openfeature_provider.engine import evaluate as engine_evaluate

__all__ = [
    "CORS_ALLOW_HEADERS",
    "CORS_EXPOSE_HEADERS",
    "bulk_payload",
    "configuration",
    "cors",
    "evaluate_bulk",
    "evaluate_flag",
    "event_stream",
    "resolution_payload",
    "stream_channel",
]

#: openapi.yaml ``evaluationSuccess.reason`` enum; anything else goes out mapped (see
#: ``resolution_payload``) with the engine's reason in ``metadata.flagappReason``.
_SUCCESS_REASONS = frozenset({"STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"})
#: openapi.yaml ``evaluationFailure.errorCode`` enum (FLAG_NOT_FOUND is the 404 shape).
_ERROR_CODES = frozenset({"PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"})
#: Flag-set metadata, never per-flag metadata (see the module docstring).
_SET_METADATA = frozenset({"snapshotVersion"})


class _BadRequest(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _context(request: HttpRequest) -> dict[str, Any]:
    """The request's ``context`` object ({} when the body or the field is absent).

    Parsed strictly: ``NaN``/``Infinity`` (which Python's json accepts but JSON does not),
    NUL characters and nesting deeper than ``SDK_JSON_MAX_DEPTH`` are a 400 naming the
    field (``INVALID_CONTEXT`` inside ``context``, else ``PARSE_ERROR``) -- a context that
    could not be sampled must not be evaluated and then silently lost from the statistics.
    """
    raw = limits.read_capped(request)
    if isinstance(raw, HttpResponse):
        raise _TooLarge(raw)
    if not raw or not raw.strip():
        return {}
    try:
        body = limits.loads(raw)
    except limits.JsonError as exc:
        raise _BadRequest(ErrorCode.PARSE_ERROR, f"request body is {exc}") from exc
    if not isinstance(body, dict):
        raise _BadRequest(ErrorCode.PARSE_ERROR, "request body must be a JSON object")
    context = body.get("context")
    problem = limits.find_problem(context, "context")
    if problem is not None:
        raise _BadRequest(ErrorCode.INVALID_CONTEXT, f"{problem[0]}: {problem[1]}")
    rest = {k: v for k, v in body.items() if k != "context"}
    problem = limits.find_problem(rest, "")
    if problem is not None:
        raise _BadRequest(ErrorCode.PARSE_ERROR, f"{problem[0]}: {problem[1]}")
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise _BadRequest(ErrorCode.INVALID_CONTEXT, "context must be a JSON object")
    return context


class _TooLarge(Exception):
    def __init__(self, response: HttpResponse) -> None:
        super().__init__("body too large")
        self.response = response


def _scalar_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """OFREP metadata values are booleans, strings or numbers; drop anything else."""
    out: dict[str, Any] = {}
    for name, value in metadata.items():
        if name in _SET_METADATA:
            continue
        if isinstance(value, bool | int | float | str):
            out[str(name)] = value
    return out


def _typed(value: Any, kind: str | None) -> Any:
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def resolution_payload(res: Resolution, ruleset: Ruleset | None) -> tuple[int, dict[str, Any]]:
    """The HTTP status and OFREP body of one resolution."""
    if res.error_code is not None:
        status = 404 if res.error_code == ErrorCode.FLAG_NOT_FOUND else 400
        code = res.error_code if res.error_code in _ERROR_CODES else ErrorCode.GENERAL
        if res.error_code == ErrorCode.FLAG_NOT_FOUND:
            code = ErrorCode.FLAG_NOT_FOUND
        detail = res.error_message or code.replace("_", " ").lower()
        failure: dict[str, Any] = {"key": res.flag_key, "errorCode": code, "errorDetails": detail}
        metadata = _scalar_metadata(res.metadata)
        if metadata and code != ErrorCode.FLAG_NOT_FOUND:
            # evaluationFailure allows flag metadata; the web provider reports it (as
            # FlagappProvider does for the same failure), so the flag's owner/type survive.
            failure["metadata"] = metadata
        return status, failure
    metadata = _scalar_metadata(res.metadata)
    reason = res.reason
    if reason not in _SUCCESS_REASONS:
        metadata["flagappReason"] = reason
        reason = Reason.DISABLED if reason == Reason.PREREQUISITE_FAILED else "UNKNOWN"
    payload: dict[str, Any] = {"key": res.flag_key, "reason": reason, "variant": res.variant}
    if not res.use_default:
        flag = ruleset.flags.get(res.flag_key) if ruleset is not None else None
        kind = flag.kind if flag is not None else None
        if kind == "object" and not isinstance(res.value, dict):
            return 400, {
                "key": res.flag_key,
                "errorCode": ErrorCode.GENERAL,
                "errorDetails": f"object flag {res.flag_key!r} serves a JSON array (variant "
                f"{res.variant!r}); OFREP object values are JSON objects",
                "metadata": metadata,
            }
        payload["value"] = _typed(res.value, kind)
    else:
        payload["variant"] = None
    payload["metadata"] = metadata
    return 200, payload


@csrf_exempt
@cors("POST")
@survives_database_outage
async def evaluate_flag(request: HttpRequest, key: str) -> HttpResponse:
    """One flag. Async: under ASGI a warm evaluation never leaves the event loop."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    info = await aauthorize(request, "ofrep")
    if isinstance(info, HttpResponse):
        return info
    try:
        context = _context(request)
    except _TooLarge as exc:
        return exc.response
    except _BadRequest as exc:
        return json_response({"key": key, "errorCode": exc.code, "errorDetails": exc.detail}, 400)
    rs: Ruleset | None = await aget_ruleset(info.environment_key)
    if rs is None:
        await _confirm_nothing_published(info.environment_key)
        return json_response(
            {
                "key": key,
                "errorCode": ErrorCode.FLAG_NOT_FOUND,
                "errorDetails": f"no snapshot published for {info.environment_key!r} yet",
            },
            404,
        )
    res = engine_evaluate(rs, key, context)
    _offer(info.environment_key, res, context)
    status, payload = resolution_payload(res, rs)
    return json_response(payload, status)


def _published(env_key: str) -> bool:
    from flagapp.models import Snapshot

    return Snapshot.objects.filter(environment__key=env_key).exists()


async def _confirm_nothing_published(env_key: str) -> None:
    """This process holds no ruleset: make sure that is because nothing is published, not
    because the database is unreachable (a cold process in an outage). A database error
    propagates (``survives_database_outage``: 503 + Retry-After); a snapshot that exists
    but could not be loaded is a 503 too -- never "flag not found" or "no flags"."""
    if await sync_to_async(_published)(env_key):
        raise DatabaseError(f"a snapshot of {env_key!r} exists but could not be loaded")


def _offer(env_key: str, res: Resolution, context: Mapping[str, Any]) -> None:
    from flagapp import exposures, sampling

    sampling.offer(env_key, res.flag_key, context, res.variant)
    if not res.use_default:  # an exposure, through flagapp.evaluate's pipeline (memory only)
        exposures.expose(env_key, res, context, source="ofrep")


def _bulk_etag(rs: Ruleset, context: Mapping[str, Any]) -> str:
    canonical = json.dumps(context, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(f"{rs.etag}\n{canonical}".encode()).hexdigest()[:32]
    return f"{rs.version}-{digest}"


@csrf_exempt
@cors("POST")
@survives_database_outage
async def evaluate_bulk(request: HttpRequest) -> HttpResponse:
    """Every flag for one context, with an ETag over (snapshot, context); the flag-set
    ``metadata`` holds the ``snapshotVersion`` that answered."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    info = await aauthorize(request, "ofrep")
    if isinstance(info, HttpResponse):
        return info
    try:
        context = _context(request)
    except _TooLarge as exc:
        return exc.response
    except _BadRequest as exc:
        return json_response({"errorCode": exc.code, "errorDetails": exc.detail}, 400)
    rs: Ruleset | None = await aget_ruleset(info.environment_key)
    announced = request.GET.get("flagConfigEtag")
    if rs is not None and announced and announced.strip('"') != rs.etag:
        rs = await _recheck(info.environment_key, rs)
    streams = event_streams(info)
    if rs is None:
        await _confirm_nothing_published(info.environment_key)
        return json_response({"flags": [], **streams})
    etag = _bulk_etag(rs, context)
    quoted = f'"{etag}"'
    if etag_matches(request.headers.get("If-None-Match"), etag):
        response = HttpResponse(status=304)
        response["ETag"] = quoted
        return response
    response = json_response({**bulk_payload(rs, context), **streams})
    response["ETag"] = quoted
    response["Cache-Control"] = "private, no-cache"
    return response


def bulk_payload(rs: Ruleset, context: Mapping[str, Any]) -> dict[str, Any]:
    """The OFREP bulk answer for ``context`` (without ``eventStreams``): every flag's
    single answer (failures inline) and the flag-set ``metadata``. Also what
    ``{% flagapp_bootstrap %}`` renders into a page."""
    flags = []
    for flag_key in rs.flags:
        res = engine_evaluate(rs, flag_key, context)
        _status, payload = resolution_payload(res, rs)
        flags.append(payload)
    return {"flags": flags, "metadata": {"snapshotVersion": rs.version}}


_rechecked: dict[str, float] = {}


async def _recheck(env_key: str, rs: Ruleset) -> Ruleset:
    """A re-fetch triggered by an event names a snapshot (``flagConfigEtag``) this process
    does not hold yet: look for it in the shared cache/database before answering (a stale
    answer -- worse, a 304 -- would leave the client on the old flags until the next
    change). At most every ``RULESET_RECHECK_SECONDS`` per environment and process, so a
    client cannot turn made-up etags into database reads."""
    from flagapp import evaluation

    now = time.monotonic()
    if now - _rechecked.get(env_key, 0.0) < float(settings.RULESET_RECHECK_SECONDS):
        return rs
    _rechecked[env_key] = now
    evaluation.expire(env_key)
    fresh: Ruleset | None = await sync_to_async(evaluation.get_ruleset)(env_key)
    return fresh if fresh is not None else rs


_CONFIGURATION = {
    "name": "flagapp",
    "capabilities": {
        # Bulk answers carry an ETag; polling with If-None-Match costs the server little.
        "cacheInvalidation": {"polling": {"enabled": True, "minPollingIntervalMs": 1000}},
        "flagEvaluation": {"supportedTypes": ["boolean", "string", "int", "float", "object"]},
    },
}
_CONFIGURATION_BODY = json.dumps(_CONFIGURATION, separators=(",", ":"))
_CONFIGURATION_ETAG = hashlib.sha256(_CONFIGURATION_BODY.encode()).hexdigest()[:16]


@cors("GET", "HEAD")
@survives_database_outage
async def configuration(request: HttpRequest) -> HttpResponse:
    """``GET /ofrep/v1/configuration`` (an OFREP extension): what this server supports."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    info = await aauthorize(request, "ofrep")
    if isinstance(info, HttpResponse):
        return info
    if etag_matches(request.headers.get("If-None-Match"), _CONFIGURATION_ETAG):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(_CONFIGURATION_BODY, content_type="application/json")
    response["ETag"] = f'"{_CONFIGURATION_ETAG}"'
    return response
