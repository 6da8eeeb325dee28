"""In-process evaluation: a per-process copy of each environment's ruleset, and ``evaluate()``.

Why it is shaped like this (see docs/django.md, "How fresh is a flag"):

* The warm path must cost a few microseconds and make **no query**: a per-process dict maps
  an environment key to ``(ruleset, version, next_check_at)``. Until ``time.monotonic()``
  passes ``next_check_at`` nothing but that dict is read.
* Other processes learn about a change through the shared Django cache
  (``FLAGAPP["CACHE_ALIAS"]``): once per ``FLAGAPP["CACHE_CHECK_INTERVAL"]`` seconds one
  ``cache.get`` of ``flagapp:snapshot:<env>:version``. A new version's document is read from
  the cache (``flagapp:snapshot:<env>:<version>``), else from the database
  (``flagapp.snapshot.latest``), and parsed once. So a change made elsewhere is seen within
  the check interval (plus the cache's own propagation) — a bounded, documented time.
* A publish in *this* process (``flagapp.signals.snapshot_published``) swaps the new ruleset
  in immediately.
* Compiling and publishing is not evaluation's job: with no snapshot at all every flag
  resolves to the caller's default with FLAG_NOT_FOUND (logged once per environment).
* ``evaluate`` never raises into the caller's request: anything unexpected becomes the
  caller's default with an OpenFeature error code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openfeature_provider.engine import ErrorCode, Reason, parse_ruleset
from openfeature_provider.engine import evaluate as engine_evaluate

from .context import context_for_request

if TYPE_CHECKING:
    from openfeature_provider.engine import Ruleset

__all__ = [
    "EvaluationDetails",
    "aevaluate",
    "aflag_is_active",
    "aget_value",
    "attribute_in_use",
    "clear_cache",
    "current_ruleset",
    "evaluate",
    "flag_is_active",
    "get_ruleset",
    "get_value",
    "kind_of",
    "subscribe",
    "unsubscribe",
]

logger = logging.getLogger("flagapp")

#: The kind a call asks for, from the type of its default (exact types: bool is not int).
_KIND_OF_DEFAULT: dict[type, str] = {
    bool: "boolean",
    str: "string",
    int: "integer",
    float: "float",
    dict: "object",
    list: "object",
}


def kind_of(default: Any) -> str | None:
    """The flag kind implied by a default value, or ``None`` (no type check) for others."""
    return _KIND_OF_DEFAULT.get(type(default))


@dataclass(frozen=True, slots=True)
class EvaluationDetails:
    """The result of one evaluation, shaped like OpenFeature's evaluation details.

    ``value`` is always usable: on any error or when the flag says so it is the caller's
    default. ``reason`` and ``error_code`` use OpenFeature's spellings.
    """

    flag_key: str
    value: Any
    variant: str | None = None
    reason: str = Reason.DEFAULT
    error_code: str | None = None
    error_message: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.error_code is not None


# --------------------------------------------------------------------------- the cache


class _Entry:
    """One environment's ruleset in this process. Mutated only under ``_lock``."""

    __slots__ = ("attrs", "etag", "next_check_at", "ruleset", "version")

    def __init__(self, ruleset: Ruleset | None, version: int, next_check_at: float) -> None:
        self.ruleset = ruleset
        self.version = version
        self.etag = ruleset.etag if ruleset is not None else ""
        self.next_check_at = next_check_at
        self.attrs = _referenced_attributes(ruleset) if ruleset is not None else frozenset()


_entries: dict[str, _Entry] = {}
_lock = threading.RLock()
_warned_missing: set[str] = set()
_listeners: list[Callable[[str | None], None]] = []
_monotonic = time.monotonic

#: Test overrides (flagapp.testutils.override_flag): flag key -> value. Read without a lock
#: (a dict lookup is atomic); written under ``_lock``.
_overrides: dict[str, Any] = {}

#: id(Resolution) -> (that Resolution, its EvaluationDetails); the Resolution is held so its
#: id cannot be reused while the entry exists. Cleared when a ruleset is swapped in.
_details_memo: dict[int, tuple[Any, EvaluationDetails]] = {}
_DETAILS_MEMO_MAX = 4096

#: Memo of settings read on the hot path; reset on ``setting_changed``.
_default_env: str | None = None


def version_key(env_key: str) -> str:
    return f"flagapp:snapshot:{env_key}:version"


def document_key(env_key: str, version: int) -> str:
    return f"flagapp:snapshot:{env_key}:{version}"


def _conf() -> Any:
    from flagapp.conf import settings as flagapp_settings

    return flagapp_settings


def _environment() -> str:
    global _default_env
    env = _default_env
    if env is None:
        env = _default_env = str(_conf().ENVIRONMENT)
    return env


def get_ruleset(env_key: str | None = None) -> Ruleset | None:
    """This process's ruleset for ``env_key`` (default: ``FLAGAPP["ENVIRONMENT"]``).

    Warm and within the check interval: one dict lookup and one clock read.
    """
    env = env_key or _environment()
    entry = _entries.get(env)
    if entry is not None and _monotonic() < entry.next_check_at:
        return entry.ruleset
    return _refresh(env)


def current_ruleset(env_key: str | None = None) -> Ruleset | None:
    """What this process holds for ``env_key`` right now, without any check or query."""
    entry = _entries.get(env_key or _environment())
    return entry.ruleset if entry is not None else None


def is_warm(env_key: str | None = None) -> bool:
    """True when ``get_ruleset`` would answer without touching the cache or the database."""
    entry = _entries.get(env_key or _environment())
    return entry is not None and _monotonic() < entry.next_check_at


def attribute_in_use(attr: str, env_key: str | None = None) -> bool:
    """Whether a ruleset this process holds reads context attribute ``attr`` at all
    (``env_key`` None: any environment, since one request may evaluate several)."""
    if env_key is not None:
        entry = _entries.get(env_key)
        return entry is not None and attr in entry.attrs
    return any(attr in entry.attrs for entry in list(_entries.values()))


def _refresh(env: str) -> Ruleset | None:
    installed: Ruleset | None = None
    with _lock:
        entry = _entries.get(env)
        now = _monotonic()
        if entry is not None and now < entry.next_check_at:
            return entry.ruleset
        conf = _conf()
        interval = float(conf.CACHE_CHECK_INTERVAL)
        cache = _shared_cache(conf)
        shared_version: Any = None
        if cache is not None:
            try:
                shared_version = cache.get(version_key(env))
            except Exception:  # a cache outage must not break pages
                logger.warning("flagapp: shared cache unavailable", exc_info=True)
        if entry is not None and shared_version is not None and shared_version == entry.version:
            entry.next_check_at = now + interval
            return entry.ruleset
        try:
            document, version = _load_document(env, shared_version, cache)
        except Exception:
            logger.exception("flagapp: could not load the snapshot of environment %r", env)
            if entry is not None:
                entry.next_check_at = now + interval
                return entry.ruleset
            _entries[env] = _Entry(None, 0, now + interval)
            return None
        if document is None:
            if env not in _warned_missing:
                _warned_missing.add(env)
                logger.warning(
                    "flagapp: no snapshot published for environment %r; every flag serves "
                    "the caller's default (FLAG_NOT_FOUND) until one is",
                    env,
                )
            if entry is not None and entry.ruleset is not None:
                entry.next_check_at = now + interval
                return entry.ruleset
            _entries[env] = _Entry(None, 0, now + interval)
            return None
        if entry is not None and entry.ruleset is not None and version == entry.version:
            entry.next_check_at = now + interval
            return entry.ruleset
        try:
            ruleset = parse_ruleset(document)
        except Exception:
            logger.exception(
                "flagapp: snapshot %s of %r failed to parse; kept the old one", version, env
            )
            if entry is not None:
                entry.next_check_at = now + interval
                return entry.ruleset
            _entries[env] = _Entry(None, 0, now + interval)
            return None
        _entries[env] = _Entry(ruleset, version, now + interval)
        _details_memo.clear()
        _warned_missing.discard(env)
        installed = ruleset
    _notify(env, installed)
    return installed


def _shared_cache(conf: Any) -> Any:
    from django.core.cache import caches

    try:
        return caches[conf.CACHE_ALIAS]
    except Exception:
        logger.warning("flagapp: cache alias %r is not configured", conf.CACHE_ALIAS)
        return None


def _load_document(env: str, shared_version: Any, cache: Any) -> tuple[Any, int]:
    """The newest document: from the shared cache when it has it, else from the database."""
    if shared_version is not None and cache is not None:
        try:
            document = cache.get(document_key(env, shared_version))
        except Exception:
            document = None
        if document is not None:
            return document, int(shared_version)
    from flagapp import snapshot as snapshot_module

    snap = snapshot_module.latest(env)
    if snap is None:
        return None, 0
    if cache is not None:
        # Re-seed an evicted or cold shared cache so the other processes stop asking the
        # database. ``add`` never overwrites a newer version another process just published.
        try:
            cache.add(document_key(env, snap.version), snap.document)
            cache.add(version_key(env), snap.version)
        except Exception:
            pass
    return snap.document, int(snap.version)


def install(env_key: str, ruleset: Ruleset, version: int | None = None) -> None:
    """Swap in ``ruleset`` for ``env_key`` now (a same-process publish, or a test)."""
    interval = float(_conf().CACHE_CHECK_INTERVAL)
    with _lock:
        _entries[env_key] = _Entry(
            ruleset, ruleset.version if version is None else version, _monotonic() + interval
        )
        _details_memo.clear()
        _warned_missing.discard(env_key)
    _notify(env_key, ruleset)


def clear_cache(env_key: str | None = None) -> None:
    """Forget this process's copy (all environments by default); the next call reloads."""
    with _lock:
        if env_key is None:
            _entries.clear()
            _warned_missing.clear()
        else:
            _entries.pop(env_key, None)
            _warned_missing.discard(env_key)


def expire(env_key: str | None = None) -> None:
    """Make the next evaluation check the shared cache, keeping the current copy meanwhile."""
    with _lock:
        for key, entry in _entries.items():
            if env_key is None or key == env_key:
                entry.next_check_at = 0.0


def subscribe(callback: Callable[[str | None], None]) -> None:
    """Call ``callback(env_key)`` whenever a new ruleset is swapped in for ``env_key``.

    ``env_key`` is ``None`` when the test overrides changed (every environment is affected).
    The callback reads what it needs with ``current_ruleset`` and ``overrides``.
    """
    with _lock:
        if callback not in _listeners:
            _listeners.append(callback)


def unsubscribe(callback: Callable[[str | None], None]) -> None:
    with _lock:
        if callback in _listeners:
            _listeners.remove(callback)


def _notify(env: str | None, ruleset: Ruleset | None) -> None:
    if ruleset is None and env is not None:
        return
    for callback in list(_listeners):
        try:
            callback(env)
        except Exception:
            logger.exception("flagapp: ruleset listener %r failed", callback)


def _referenced_attributes(ruleset: Ruleset) -> frozenset[str]:
    """Top-level context attributes any condition or rollout of the ruleset reads."""
    attrs: set[str] = set()

    def add_conditions(conditions: Iterable[Any]) -> None:
        for cond in conditions:
            if cond.attr:
                attrs.add(cond.attr.split(".", 1)[0])

    def add_serve(serve: Any) -> None:
        if serve is not None and serve.rollout is not None:
            attrs.add(serve.rollout.bucket_by.split(".", 1)[0])

    for flag in ruleset.flags.values():
        for rule in flag.rules:
            add_conditions(rule.when)
            add_serve(rule.serve)
        add_serve(flag.fallthrough)
    for segment in ruleset.segments.values():
        add_conditions(segment.when)
    return frozenset(attrs)


def _on_snapshot_published(
    sender: Any, snapshot: Any = None, environment_key: str = "", **kwargs: Any
) -> None:
    """Same-process publish: take the new ruleset at once instead of at the next check."""
    if snapshot is None:
        return
    env = environment_key or snapshot.environment.key
    try:
        # flagapp.publishing sends the Ruleset it already parsed: no second parse here.
        ruleset = kwargs.get("ruleset")
        if ruleset is None:
            ruleset = parse_ruleset(snapshot.document)
    except Exception:
        logger.exception("flagapp: published snapshot of %r failed to parse", env)
        expire(env)
        return
    install(env, ruleset, int(snapshot.version))


def _on_setting_changed(setting: str = "", **kwargs: Any) -> None:
    global _default_env
    if setting == "FLAGAPP":
        _default_env = None
        expire()


def _connect_signals() -> None:
    from django.core.signals import setting_changed

    setting_changed.connect(_on_setting_changed, dispatch_uid="flagapp.evaluation.settings")
    try:
        from flagapp.signals import snapshot_published
    except ImportError:  # pragma: no cover - the core app always ships it
        return
    snapshot_published.connect(_on_snapshot_published, dispatch_uid="flagapp.evaluation")


_connect_signals()


# --------------------------------------------------------------------------- evaluation

# Usage statistics (evaluation counts, last-evaluated, a sample of contexts) for the
# stale-flag report and the blast-radius preview (``flagapp.sampling``). The hot path only
# touches memory: a counter per (environment, flag) and, for about one evaluation in
# 1/CONTEXT_SAMPLE_RATE, a copy of the context. The batch is handed to
# ``flagapp.sampling.record`` after a response is sent (``request_finished``), at most every
# SAMPLING_FLUSH_SECONDS, or by ``flush_usage()`` — never inside ``evaluate``, so a warm
# evaluation makes no query.

_usage_counts: dict[tuple[str, str], int] = {}
_usage_samples: list[tuple[str, str, str | None, dict[str, Any]]] = []
_USAGE_SAMPLES_MAX = 1000
_sample_countdown = 1
_last_usage_flush = 0.0


def _note_usage(env: str, key: str, ctx: Mapping[str, Any], variant: str | None) -> None:
    global _sample_countdown
    pair = (env, key)
    _usage_counts[pair] = _usage_counts.get(pair, 0) + 1
    _sample_countdown -= 1
    if _sample_countdown <= 0:
        _sample_countdown = _next_sample_gap()
        if ctx and len(_usage_samples) < _USAGE_SAMPLES_MAX:
            _usage_samples.append((env, key, variant, dict(ctx)))


def _next_sample_gap() -> int:
    import random

    try:
        rate = float(_conf().CONTEXT_SAMPLE_RATE)
    except Exception:
        rate = 0.05
    if rate <= 0:
        return 1 << 62
    if rate >= 1:
        return 1
    # Uniform gap with mean 1/rate: cheap, and no fixed stride to alias with page layouts.
    return random.randint(1, max(1, round(2 / rate) - 1))


def flush_usage() -> int:
    """Hand buffered counts and sampled contexts to ``flagapp.sampling``; return how many
    flags were counted. Called after each response (throttled); call it from long-running
    non-request code (a worker loop) if that code evaluates flags."""
    global _usage_counts, _usage_samples, _last_usage_flush
    _last_usage_flush = _monotonic()
    if not _usage_counts and not _usage_samples:
        return 0
    with _lock:
        counts, _usage_counts = _usage_counts, {}
        samples, _usage_samples = _usage_samples, []
    try:
        from flagapp import sampling
    except Exception:
        return 0
    from django.utils import timezone

    now = timezone.now()
    by_env: dict[str, tuple[list[Any], dict[str, Any]]] = {}
    for (env, key), n in counts.items():
        by_env.setdefault(env, ([], {}))[1][key] = (n, now)
    for env, key, variant, ctx in samples:
        by_env.setdefault(env, ([], {}))[0].append((key, variant or "", ctx, now))
    for env, (env_samples, env_counts) in by_env.items():
        try:
            sampling.record(env, env_samples, counts=env_counts)
        except Exception:
            logger.warning("flagapp: could not record evaluation usage", exc_info=True)
    return len(counts)


def _on_request_finished(**kwargs: Any) -> None:
    try:
        interval = float(_conf().SAMPLING_FLUSH_SECONDS)
    except Exception:
        interval = 10.0
    if _monotonic() - _last_usage_flush >= interval:
        flush_usage()


def _connect_usage() -> None:
    from django.core.signals import request_finished

    request_finished.connect(_on_request_finished, dispatch_uid="flagapp.evaluation.usage")


_connect_usage()

#: Called as ``_sampler(env, key, context, variant)`` after each evaluation (tests swap it).
_sampler: Any = _note_usage


def _to_context(request_or_context: Any) -> Mapping[str, Any] | None:
    """A mapping for the engine, or ``None`` when the argument cannot be one."""
    if request_or_context is None:
        return {}
    if isinstance(request_or_context, dict):
        return request_or_context
    if hasattr(request_or_context, "META"):  # HttpRequest, DRF Request, test doubles
        return context_for_request(request_or_context)
    if isinstance(request_or_context, Mapping):
        return request_or_context
    targeting_key = getattr(request_or_context, "targeting_key", _MISSING)
    attributes = getattr(request_or_context, "attributes", _MISSING)
    if targeting_key is not _MISSING and isinstance(attributes, Mapping):
        ctx = dict(attributes)  # an openfeature EvaluationContext
        if targeting_key is not None:
            ctx["targetingKey"] = targeting_key
        return ctx
    return None


_MISSING: Any = object()


def _override_details(key: str, default: Any, kind: str | None) -> EvaluationDetails:
    value = _overrides[key]
    value_kind = kind_of(value)
    if kind is not None and value_kind is not None and value_kind != kind:
        if not (kind == "float" and value_kind == "integer"):
            return EvaluationDetails(
                key,
                default,
                None,
                Reason.ERROR,
                ErrorCode.TYPE_MISMATCH,
                f"override of {key!r} is {value_kind}, {kind} was requested",
                {"override": True},
            )
        value = float(value)
    return EvaluationDetails(key, value, "override", Reason.STATIC, None, None, {"override": True})


def evaluate(
    key: str,
    default: Any,
    request_or_context: Any = None,
    *,
    environment: str | None = None,
    kind: str | None = None,
) -> EvaluationDetails:
    """Evaluate flag ``key`` for a request (or a context mapping) in this process.

    ``kind`` defaults to the type of ``default`` (bool → boolean, str → string, int →
    integer, float → float, dict/list → object), so asking a string flag for a bool gives
    TYPE_MISMATCH and the default. Never raises.
    """
    try:
        if kind is None:
            kind = _KIND_OF_DEFAULT.get(type(default))
        if _overrides and key in _overrides:
            return _override_details(key, default, kind)
        env = environment or _default_env or _environment()
        entry = _entries.get(env)
        if entry is not None and _monotonic() < entry.next_check_at:
            ruleset = entry.ruleset
        else:
            ruleset = _refresh(env)
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
            ctx = getattr(request_or_context, "_flagapp_context", None)
            if ctx is None:
                ctx = _to_context(request_or_context)
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
        try:  # noqa: SIM105
            _sampler(env, key, ctx, res.variant)
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
) -> EvaluationDetails:
    """``evaluate`` for async code: inline when warm, else in a thread (it may query)."""
    from asgiref.sync import sync_to_async

    from .context import CONTEXT_ATTR

    warm = is_warm(environment)
    needs_context = request_or_context is not None and hasattr(request_or_context, "META")
    if warm and (not needs_context or hasattr(request_or_context, CONTEXT_ATTR)):
        return evaluate(key, default, request_or_context, environment=environment, kind=kind)
    return await sync_to_async(evaluate)(
        key, default, request_or_context, environment=environment, kind=kind
    )


async def aget_value(request_or_context: Any, key: str, default: Any, **kwargs: Any) -> Any:
    return (await aevaluate(key, default, request_or_context, **kwargs)).value


async def aflag_is_active(request_or_context: Any, key: str, **kwargs: Any) -> bool:
    return (await aevaluate(key, False, request_or_context, **kwargs)).value is True


def set_override(key: str, value: Any) -> tuple[bool, Any]:
    """Force ``key`` to ``value`` in this process; returns what to pass to ``restore_override``.

    Used by ``flagapp.testutils.override_flag``; listeners (the OpenFeature Django source)
    are told so their rulesets follow.
    """
    with _lock:
        previous = (key in _overrides, _overrides.get(key))
        _overrides[key] = value
    _notify_overrides()
    return previous


def restore_override(key: str, previous: tuple[bool, Any]) -> None:
    with _lock:
        had, value = previous
        if had:
            _overrides[key] = value
        else:
            _overrides.pop(key, None)
    _notify_overrides()


def overrides() -> dict[str, Any]:
    """A copy of the active overrides."""
    return dict(_overrides)


def _notify_overrides() -> None:
    _notify(None, None)
