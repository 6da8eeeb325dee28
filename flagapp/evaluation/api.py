"""The public evaluation API: ``evaluate`` and its shorthands, sync and async.

``evaluate`` never raises into the caller's request: anything unexpected becomes the caller's
default with an OpenFeature error code. A warm call reads the per-process cache
(:mod:`.cache`), builds the context once per request (:mod:`.context`), runs the engine and
notes the evaluation in :mod:`flagapp.sampling`'s in-memory buffer (``sampling.note``: no
query, never a flush inside ``evaluate``; the buffer is written after responses).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from asgiref.sync import sync_to_async

from flagapp import exposures, sampling
from openfeature_provider.engine import ErrorCode, Reason
from openfeature_provider.engine import evaluate as engine_evaluate

from . import cache
from .cache import _entries, is_warm, refresh
from .context import CONTEXT_ATTR, to_context
from .details import KIND_OF_DEFAULT, EvaluationDetails
from .overrides import _overrides, override_details

__all__ = [
    "aevaluate",
    "aflag_is_active",
    "aget_value",
    "evaluate",
    "flag_is_active",
    "flush_usage",
    "get_value",
]

logger = logging.getLogger("flagapp")

#: Called as ``_sampler(env, key, context, variant)`` after each evaluation (tests swap it).
_sampler: Any = sampling.note
#: Called as ``_exposer(env, resolution, context)`` for each evaluation that served a
#: variant, unless ``record=False`` (memory only).
_exposer: Any = exposures.expose
#: Called as ``_telemetry(details, env, context or None)`` after each evaluation when
#: ``FLAGAPP["OPENTELEMETRY"]`` is on (:mod:`flagapp.telemetry` installs it); None when off.
_telemetry: Any = None

#: id(Resolution) -> (that Resolution, its EvaluationDetails); the Resolution is held so its
#: id cannot be reused while the entry exists. Cleared when a ruleset is swapped in.
_details_memo: dict[int, tuple[Any, EvaluationDetails]] = {}
_DETAILS_MEMO_MAX = 4096
cache._on_swap.append(_details_memo.clear)


def evaluate(
    key: str,
    default: Any,
    request_or_context: Any = None,
    *,
    environment: str | None = None,
    kind: str | None = None,
    record: bool = True,
) -> EvaluationDetails:
    """Evaluate flag ``key`` for a request (or a context mapping) in this process.

    ``kind`` defaults to the type of ``default`` (bool → boolean, str → string, int →
    integer, float → float, dict/list → object), so asking a string flag for a bool gives
    TYPE_MISMATCH and the default. An evaluation that served a variant is recorded as an
    exposure (``FLAGAPP["RECORD_EXPOSURES"]``, sampled at ``EXPOSURE_SAMPLE_RATE``; in
    memory, stored after the response); ``record=False`` skips that for this call (an
    admin page, a health check). Never raises.

    With ``FLAGAPP["OPENTELEMETRY"]`` on, each call also emits an OpenTelemetry
    ``feature_flag.evaluation`` event (:mod:`flagapp.telemetry`).
    """
    details = _evaluate(key, default, request_or_context, environment, kind, record)
    if _telemetry is not None:
        _telemetry(
            details,
            environment or cache._default_env or cache.default_environment(),
            request_or_context
            if request_or_context.__class__ is dict
            else getattr(request_or_context, CONTEXT_ATTR, None),
        )
    return details


def _evaluate(
    key: str,
    default: Any,
    request_or_context: Any,
    environment: str | None,
    kind: str | None,
    record: bool,
) -> EvaluationDetails:
    """The evaluation itself (``evaluate`` adds the optional telemetry)."""
    try:
        if kind is None:
            kind = KIND_OF_DEFAULT.get(type(default))
        if _overrides and key in _overrides:
            return override_details(key, default, kind)
        env = environment or cache._default_env or cache.default_environment()
        entry = _entries.get(env)
        if entry is not None and cache._monotonic() < entry.next_check_at:
            ruleset = entry.ruleset
        else:
            ruleset = refresh(env)
        if ruleset is None:
            return EvaluationDetails(
                key,
                default,
                None,
                Reason.ERROR,
                ErrorCode.FLAG_NOT_FOUND,
                f"no snapshot is published for environment {env!r}",
            )
        ctx: Mapping[str, Any] | None
        if request_or_context.__class__ is dict:
            ctx = request_or_context
        else:
            # A request that already checked a flag carries its context.
            ctx = getattr(request_or_context, CONTEXT_ATTR, None)
            if ctx is None:
                ctx = to_context(request_or_context)
                if ctx is None:
                    return EvaluationDetails(
                        key,
                        default,
                        None,
                        Reason.ERROR,
                        ErrorCode.INVALID_CONTEXT,
                        f"cannot build a context from {type(request_or_context).__name__}",
                    )
        res = engine_evaluate(ruleset, key, ctx, kind)
        # Statistics must never cost a page. (try/except, not contextlib.suppress: this is
        # the hot path and a with-block costs more than the call it guards.)
        try:
            _sampler(env, key, ctx, res.variant)
            if record and not res.use_default:
                _exposer(env, res, ctx)
        except Exception:
            pass
        if res.use_default:
            return EvaluationDetails(
                key,
                default,
                res.variant,
                res.reason,
                res.error_code,
                res.error_message,
                res.metadata,
            )
        # The engine hands out one precomputed Resolution per (flag, outcome); the details
        # of a served value depend on nothing else, so build them once per Resolution.
        memo = _details_memo.get(id(res))
        if memo is not None and memo[0] is res:
            return memo[1]
        value = res.value
        if kind == "float" and value.__class__ is int:
            value = float(value)
        details = EvaluationDetails(
            key, value, res.variant, res.reason, res.error_code, res.error_message, res.metadata
        )
        if len(_details_memo) >= _DETAILS_MEMO_MAX:
            _details_memo.clear()
        _details_memo[id(res)] = (res, details)
        return details
    except Exception as exc:
        logger.exception("flagapp: evaluating %r failed", key)
        return EvaluationDetails(key, default, None, Reason.ERROR, ErrorCode.GENERAL, str(exc))


def get_value(request_or_context: Any, key: str, default: Any, **kwargs: Any) -> Any:
    """The flag's value for this request, or ``default``."""
    return evaluate(key, default, request_or_context, **kwargs).value


def flag_is_active(request_or_context: Any, key: str, **kwargs: Any) -> bool:
    """True when boolean flag ``key`` is on for this request (off on any error)."""
    return evaluate(key, False, request_or_context, **kwargs).value is True


async def aevaluate(
    key: str,
    default: Any,
    request_or_context: Any = None,
    *,
    environment: str | None = None,
    kind: str | None = None,
    record: bool = True,
) -> EvaluationDetails:
    """``evaluate`` for async code: inline when warm, else in a thread (it may query)."""
    warm = is_warm(environment)
    needs_context = request_or_context is not None and hasattr(request_or_context, "META")
    if warm and (not needs_context or hasattr(request_or_context, CONTEXT_ATTR)):
        return evaluate(
            key, default, request_or_context, environment=environment, kind=kind, record=record
        )
    return await sync_to_async(evaluate)(
        key, default, request_or_context, environment=environment, kind=kind, record=record
    )


async def aget_value(request_or_context: Any, key: str, default: Any, **kwargs: Any) -> Any:
    return (await aevaluate(key, default, request_or_context, **kwargs)).value


async def aflag_is_active(request_or_context: Any, key: str, **kwargs: Any) -> bool:
    return (await aevaluate(key, False, request_or_context, **kwargs)).value is True


def flush_usage() -> int:
    """Write this process's buffered evaluation counts, sampled contexts, exposures and
    ``track()`` events now (:func:`flagapp.sampling.flush`, :func:`flagapp.exposures.flush`;
    returns how many contexts). Responses trigger it (throttled); call it from long-running
    non-request code (a worker loop) that evaluates flags."""
    samples = sampling.flush()
    exposures.flush()
    return samples
