"""Token-bucket rate limits for the SDK and OFREP endpoints.

Why a token bucket: SDKs are bursty (a fleet restarting polls at once) yet should average a
steady rate; the bucket allows ``burst`` requests at once and refills at ``rate`` per second.

Where the buckets live (``FLAGAPP["RATE_LIMIT_STORE"]``):

* ``"cache"`` (default): the Django cache ``RATE_LIMIT_CACHE`` (else ``CACHE_ALIAS``). Shared
  by every process when that cache is; the read-modify-write is not atomic, so two racing
  processes may both take the last token (errs in the client's favour by one request).
  Fine for the embedded default (LocMem, one process).
* ``"redis"``: Redis at ``REDIS_URL`` directly, an atomic script on a long-lived
  connection. The production choice. A process does not ask Redis per request: it leases
  tokens in small batches (about ``RATE_LIMIT_LEASE_SECONDS`` worth of the rate, used within
  that time or dropped), so a busy key costs one round trip per batch and a slow key (rate
  of a few per second) still one per request — exact where exactness matters. Django's Redis
  cache backend, by contrast, builds a client object per operation, which costs more CPU
  than the whole OFREP evaluation.
* ``"local"``: in this process only (no I/O at all); with N processes a key gets N times
  the limit. For a single-process deployment or as a cheap first line.

Settings: ``FLAGAPP["RATE_LIMITS"][scope] = {"rate": per_second, "burst": n}`` for the
scopes ``sdk`` (ruleset fetches), ``stream`` (stream connects; falls back to ``sdk`` when a
``RATE_LIMITS`` setting has no ``stream`` entry), ``ofrep`` and ``events``; ``None`` turns a
scope off. A request without a valid key is limited per client address, by
``unauthenticated`` when set (else by the scope of the endpoint). The defaults are sized for
a fleet sharing one key (docs/scale.md, "Fleets"): the limit is per key, and a key is
normally shared by every instance of a service.
A store failure (Redis down) allows the request: a limiter must not become an outage.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.core.signals import setting_changed

from flagapp import metrics
from flagapp.conf import namespace, settings

__all__ = ["Decision", "check", "reset"]

logger = logging.getLogger("flagapp.sdk")


def _bucket_name(scope: str, identity: str) -> str:
    """``flagapp:<namespace>:rl:<scope>:<identity>``: key ids are small integers, so without
    the deployment namespace two deployments on one Redis would share buckets. Memoised:
    working the namespace out (the database's identity through Django's connection
    handler) cost more than the rest of a warm 304; forgotten when a setting changes."""
    key = (scope, identity)
    name = _names.get(key)
    if name is None:
        if len(_names) >= _LOCAL_MAX:
            _names.clear()
        name = _names[key] = f"flagapp:{namespace()}:rl:{scope}:{identity}"
    return name


_names: dict[tuple[str, str], str] = {}


def forget_names(**kwargs: Any) -> None:
    """``setting_changed`` receiver: the namespace may have changed."""
    _names.clear()


setting_changed.connect(forget_names, dispatch_uid="flagapp.sdk.ratelimit.names")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # whole seconds until a token is available (when refused)


_ALLOW = Decision(True)


def _limits(scope: str) -> tuple[float, float] | None:
    limits = settings.RATE_LIMITS or {}
    if scope == "stream" and "stream" not in limits:
        scope = "sdk"  # settings written before the stream had its own scope
    conf = limits.get(scope)
    if not conf:
        return None
    rate = float(conf.get("rate") or 0)
    burst = float(conf.get("burst") or max(rate, 1.0))
    if rate <= 0:
        return None
    return rate, burst


def _refused(tokens: float, rate: float) -> Decision:
    return Decision(False, max(1, math.ceil((1.0 - tokens) / rate)))


def check(scope: str, identity: str) -> Decision:
    """Take one token from the bucket of ``identity`` (a key id or a client address)."""
    limits = _limits(scope)
    if identity.startswith("ip:") and "unauthenticated" in (settings.RATE_LIMITS or {}):
        # no valid key: limited per address, with the tight limit of "unauthenticated" (the
        # fleet-sized per-key limits are not for a flood of bad keys)
        limits = _limits("unauthenticated")
    if limits is None:
        return _ALLOW
    rate, burst = limits
    name = _bucket_name(scope, identity)
    store = settings.RATE_LIMIT_STORE
    try:
        if store == "redis":
            decision = _check_redis(name, rate, burst)
        elif store == "local":
            decision = _check_local(name, rate, burst)
        else:
            decision = _check_cache(name, rate, burst)
    except Exception:
        logger.warning("rate-limit store %r failed; request allowed", store, exc_info=True)
        return _ALLOW
    if not decision.allowed:
        metrics.rate_limited(scope)
    return decision


def _cache() -> Any:
    return caches[settings.RATE_LIMIT_CACHE or settings.CACHE_ALIAS]


def _check_cache(name: str, rate: float, burst: float) -> Decision:
    cache = _cache()
    now = time.time()
    state = cache.get(name)
    if state is None:
        tokens = burst
    else:
        tokens_then, then = state
        tokens = min(burst, tokens_then + max(0.0, now - then) * rate)
    # Keep the entry as long as a bucket takes to refill, then let it expire (a full bucket).
    timeout = max(1, math.ceil(burst / rate) + 1)
    if tokens < 1.0:
        cache.set(name, (tokens, now), timeout)
        return _refused(tokens, rate)
    cache.set(name, (tokens - 1.0, now), timeout)
    return _ALLOW


# --- local -----------------------------------------------------------------------------

_local: dict[str, list[float]] = {}
_local_lock = threading.Lock()
_LOCAL_MAX = 50_000


def _check_local(name: str, rate: float, burst: float) -> Decision:
    now = time.monotonic()
    with _local_lock:
        state = _local.get(name)
        if state is None:
            if len(_local) >= _LOCAL_MAX:
                _local.clear()
            state = _local[name] = [burst, now]
        tokens = min(burst, state[0] + max(0.0, now - state[1]) * rate)
        state[1] = now
        if tokens < 1.0:
            state[0] = tokens
            return _refused(tokens, rate)
        state[0] = tokens - 1.0
    return _ALLOW


# --- redis -----------------------------------------------------------------------------

_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {granted, tostring(tokens)}
"""

_script: Any = None
_script_url: str | None = None
_script_lock = threading.Lock()
#: name -> [tokens leased and not yet used, monotonic time the lease ends]
_leases: dict[str, list[float]] = {}


def _redis_script() -> Any:
    global _script, _script_url
    url = settings.REDIS_URL
    if _script is None or _script_url != url:
        with _script_lock:
            if _script is None or _script_url != url:
                import redis

                client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
                _script = client.register_script(_LUA)
                _script_url = url
    return _script


def _check_redis(name: str, rate: float, burst: float) -> Decision:
    now = time.monotonic()
    lease = _leases.get(name)
    if lease is not None and lease[0] >= 1.0 and now < lease[1]:
        with _local_lock:
            if lease[0] >= 1.0:
                lease[0] -= 1.0
                return _ALLOW
    seconds = float(settings.RATE_LIMIT_LEASE_SECONDS)
    want = max(1, min(int(rate * seconds), int(burst // 4) or 1))
    granted, tokens = _redis_script()(keys=[name], args=[rate, burst, time.time(), want])
    granted = int(granted)
    if granted < 1:
        return _refused(float(tokens), rate)
    with _local_lock:
        if len(_leases) >= _LOCAL_MAX:
            _leases.clear()
        _leases[name] = [float(granted - 1), now + seconds]
    return _ALLOW


def reset(scope: str, identity: str) -> None:
    name = _bucket_name(scope, identity)
    with _local_lock:
        _local.pop(name, None)
        _leases.pop(name, None)
    store = settings.RATE_LIMIT_STORE
    if store == "redis":
        _redis_script().registered_client.delete(name)
    elif store == "cache":
        _cache().delete(name)
