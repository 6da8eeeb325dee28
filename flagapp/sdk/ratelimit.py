"""Token-bucket rate limits for the SDK and OFREP endpoints, kept in the Django cache.

Why the shared cache: several stateless instances serve the same keys, and a limit that
lived in each process would multiply by the number of processes. Why a token bucket: SDKs
are bursty (a fleet restarting polls at once) yet should average a steady rate; the bucket
allows ``burst`` requests at once and refills at ``rate`` per second.

The read-modify-write is not atomic: two processes racing may both take the last token.
That errs in the client's favour by at most one request per racing process, which is fine
for a protective limit.

Settings: ``FLAGAPP["RATE_LIMITS"][scope] = {"rate": per_second, "burst": n}`` for the
scopes ``sdk`` (ruleset and stream), ``ofrep`` and ``events``; ``None`` turns a scope off.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import caches

from flagapp.conf import settings

__all__ = ["Decision", "check", "reset"]

_PREFIX = "flagapp:rl:"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # whole seconds until a token is available (when refused)


_ALLOW = Decision(True)


def _limits(scope: str) -> tuple[float, float] | None:
    conf = (settings.RATE_LIMITS or {}).get(scope)
    if not conf:
        return None
    rate = float(conf.get("rate") or 0)
    burst = float(conf.get("burst") or max(rate, 1.0))
    if rate <= 0:
        return None
    return rate, burst


def check(scope: str, identity: str) -> Decision:
    """Take one token from the bucket of ``identity`` (a key id or a client address)."""
    limits = _limits(scope)
    if limits is None:
        return _ALLOW
    rate, burst = limits
    cache = caches[settings.RATE_LIMIT_CACHE or settings.CACHE_ALIAS]
    name = f"{_PREFIX}{scope}:{identity}"
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
        return Decision(False, max(1, math.ceil((1.0 - tokens) / rate)))
    cache.set(name, (tokens - 1.0, now), timeout)
    return _ALLOW


def reset(scope: str, identity: str) -> None:
    caches[settings.RATE_LIMIT_CACHE or settings.CACHE_ALIAS].delete(f"{_PREFIX}{scope}:{identity}")
