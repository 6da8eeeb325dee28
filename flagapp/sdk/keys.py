"""SDK tokens and the cached token -> environment lookup (the writes are
:mod:`flagapp.services.sdk_keys`).

A token looks like ``fa_production_Ab3dE6gH<32 more base62 chars>``: a fixed prefix (so
secret scanners can find leaked keys), the environment key (so a human can tell keys apart),
then 8 characters of public id and 32 of secret. Only the sha256 of the whole token is
stored. The environment in the token is informational: the stored row decides.

Every OFREP evaluation authenticates, so the lookup is cached in-process: a warm request
hashes the token (about a microsecond) and reads a dict. Entries expire after
``FLAGAPP["SDK_KEY_CACHE_SECONDS"]``; revoking clears the entry in this process at once and
in other processes through the change notifier (or, without Redis, at expiry). Unknown
tokens are cached too (negatively), so a flood of bad keys does not become a flood of
queries. ``last_used_at`` is written at most once per ``SDK_KEY_LAST_USED_INTERVAL`` seconds
per key and process.

Database outages (stale-while-error): when refreshing an expired entry fails with a database
error, the expired entry keeps deciding — a key that passed keeps passing, a refused one keeps
being refused — for at most ``SDK_KEY_STALE_IF_ERROR`` seconds past its expiry, and the
database is asked again at most every ``SDK_KEY_OUTAGE_RETRY_SECONDS`` per key and process
(so an outage does not queue a failing connection attempt per request). A token this
process has not seen, or an entry past that bound, is refused with
:class:`AuthFailure` status 503 and ``retry_after``: the caller must not be told the key is
wrong when the store is only unreachable. Writing ``last_used_at`` is best effort.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import string
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError
from django.utils import timezone

from flagapp.conf import settings
from flagapp.signals import sdk_key_revoked

if TYPE_CHECKING:
    pass

__all__ = [
    "CLIENT",
    "SCOPES",
    "SERVER",
    "TOKEN_PREFIX",
    "AuthFailure",
    "KeyInfo",
    "NeedsDatabase",
    "active_key",
    "announce_revocation",
    "authenticate_token",
    "clear_cache",
    "forget_public_id",
    "hash_token",
    "new_token",
    "public_id_of",
    "token_from_headers",
]

logger = logging.getLogger("flagapp.sdk")

TOKEN_PREFIX = "fa_"
_ALPHABET = string.ascii_letters + string.digits
_PUBLIC_ID_LEN = 8
_SECRET_LEN = 32
_MAX_CACHE_ENTRIES = 10_000

#: Key scopes (``SdkKey.scope``). A ``client`` key is meant to be public (shipped in a web
#: page or an app): it may call OFREP only, which answers evaluated values; the ruleset
#: (every rule, every segment's member list), the stream and the events endpoints refuse it.
SERVER = "server"
CLIENT = "client"
SCOPES = (SERVER, CLIENT)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What an authenticated request knows about its key. Never holds the secret."""

    key_id: int
    public_id: str
    environment_key: str
    scope: str = SERVER


class AuthFailure(Exception):
    """The request may not use the SDK API. ``status`` is 401 (no or bad key), 403, or 503
    (the key store is unreachable; ``retry_after`` seconds)."""

    def __init__(self, status: int, detail: str, retry_after: int = 0) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


@dataclass(slots=True)
class _Entry:
    info: KeyInfo | None  # None: unknown or revoked token (negative entry)
    revoked: bool
    loaded_at: float
    touched_at: float
    #: during a database outage: do not ask the database again before this (monotonic)
    retry_at: float = 0.0


_cache: dict[str, _Entry] = {}
_lock = threading.Lock()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def new_token(environment_key: str) -> tuple[str, str, str]:
    """A fresh ``(public_id, token, sha256 of the token)`` for an environment. Used by
    :func:`flagapp.services.sdk_keys.create_sdk_key`, the writer of the row."""
    public_id = _random(_PUBLIC_ID_LEN)
    token = f"{TOKEN_PREFIX}{environment_key}_{public_id}{_random(_SECRET_LEN)}"
    return public_id, token, hash_token(token)


def announce_revocation(public_id: str) -> None:
    """Forget a revoked key here and tell the other processes (the notifier listens)."""
    from flagapp.models import SdkKey

    forget_public_id(public_id)
    try:
        sdk_key_revoked.send(sender=SdkKey, public_id=public_id)  # the notifier tells others
    except Exception:  # pragma: no cover - a notifier fault must not undo a revocation
        logger.exception("could not broadcast the revocation of SDK key %s", public_id)


def forget_public_id(public_id: str) -> None:
    """Drop cached entries of one key (called on revocation, locally and from the notifier)."""
    with _lock:
        for digest, entry in list(_cache.items()):
            if entry.info is not None and entry.info.public_id == public_id:
                del _cache[digest]
        _by_public_id.pop(public_id, None)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
        _by_public_id.clear()


#: public id -> (the active key's info or None, monotonic load time): ``active_key``.
_by_public_id: dict[str, tuple[KeyInfo | None, float]] = {}


def active_key(public_id: str, *, db: bool = True) -> KeyInfo | None:
    """The key with ``public_id`` while it is active (None: unknown or revoked).

    For credentials that name a key without carrying its secret -- the signed channel of an
    OFREP event stream URL (``flagapp.sdk.ofrep``) -- so a revocation also ends those.
    Cached like token lookups (``SDK_KEY_CACHE_SECONDS``; a revocation clears the entry).
    With ``db=False`` a lookup that needs a query raises :class:`NeedsDatabase`.
    """
    from flagapp.models import SdkKey

    now = time.monotonic()
    cached = _by_public_id.get(public_id)
    if cached is not None and now - cached[1] <= float(settings.SDK_KEY_CACHE_SECONDS):
        return cached[0]
    if not db:
        raise NeedsDatabase
    row = (
        SdkKey.objects.select_related("environment")
        .filter(public_id=public_id, revoked_at__isnull=True)
        .only("id", "public_id", "scope", "environment__key")
        .first()
    )
    info = None
    if row is not None:
        info = KeyInfo(
            key_id=row.pk,
            public_id=row.public_id,
            environment_key=row.environment.key,
            scope=row.scope,
        )
    with _lock:
        if len(_by_public_id) >= _MAX_CACHE_ENTRIES:
            _by_public_id.clear()
        _by_public_id[public_id] = (info, now)
    return info


def public_id_of(token: str) -> str | None:
    """The public id inside ``token``, or None when it is not shaped like one of ours."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    _, sep, tail = token.rpartition("_")
    if not sep or len(tail) != _PUBLIC_ID_LEN + _SECRET_LEN:
        return None
    return tail[:_PUBLIC_ID_LEN]


def _load(token: str, digest: str, now: float) -> _Entry:
    from flagapp.models import SdkKey

    public_id = public_id_of(token)
    row = None
    if public_id is not None:
        row = (
            SdkKey.objects.select_related("environment")
            .filter(public_id=public_id)
            .only(
                "id",
                "public_id",
                "secret_hash",
                "revoked_at",
                "last_used_at",
                "scope",
                "environment__key",
            )
            .first()
        )
    if row is None or not hmac.compare_digest(row.secret_hash, digest):
        return _Entry(info=None, revoked=False, loaded_at=now, touched_at=now)
    info = KeyInfo(
        key_id=row.pk,
        public_id=row.public_id,
        environment_key=row.environment.key,
        scope=row.scope,
    )
    if row.revoked_at is not None:
        return _Entry(info=info, revoked=True, loaded_at=now, touched_at=now)
    # A fresh load counts as use (a cold process records it at start-up), unless another
    # load recorded it less than SDK_KEY_LAST_USED_INTERVAL ago.
    interval = float(settings.SDK_KEY_LAST_USED_INTERVAL)
    wall = timezone.now()
    if row.last_used_at is None or (wall - row.last_used_at).total_seconds() > interval:
        _touch(row.pk, wall)
    return _Entry(info=info, revoked=False, loaded_at=now, touched_at=now)


def _touch(key_id: int, when: Any) -> None:
    """Record use; best effort (statistics must not fail a request in a database outage)."""
    from flagapp.models import SdkKey

    try:
        SdkKey.objects.filter(pk=key_id).update(last_used_at=when)
    except DatabaseError:
        logger.warning("could not record the use of SDK key %s (database error)", key_id)


def _outage_retry_after() -> int:
    return max(1, math.ceil(float(settings.SDK_KEY_OUTAGE_RETRY_SECONDS)))


class NeedsDatabase(Exception):
    """Raised by ``authenticate_token(..., db=False)`` when the answer needs a query."""


def authenticate_token(token: str | None, *, db: bool = True) -> KeyInfo:
    """Resolve a presented token to its key; raise :class:`AuthFailure` when it may not pass.

    Warm calls make no query. With ``db=False`` (an event loop, where the ORM may not run)
    a call that would query or write raises :class:`NeedsDatabase` instead, so the caller
    can retry from a thread. Never logs the token.
    """
    if not token:
        raise AuthFailure(401, "an SDK key is required (Authorization: Bearer or X-API-Key)")
    digest = hash_token(token)
    now = time.monotonic()
    entry = _cache.get(digest)
    ttl = float(settings.SDK_KEY_CACHE_SECONDS)
    if entry is None or now - entry.loaded_at > ttl:
        if entry is not None and now < entry.retry_at and _within_stale_bound(entry, now, ttl):
            pass  # database outage: keep deciding with the expired entry until retry_at
        else:
            if not db:
                raise NeedsDatabase
            entry = _refresh(token, digest, entry, now, ttl)
    if entry.info is None:
        raise AuthFailure(401, "unknown SDK key")
    if entry.revoked:
        raise AuthFailure(401, "this SDK key was revoked")
    interval = float(settings.SDK_KEY_LAST_USED_INTERVAL)
    if now - entry.touched_at > interval:
        if not db:
            raise NeedsDatabase
        entry.touched_at = now
        _touch(entry.info.key_id, timezone.now())
    return entry.info


def _within_stale_bound(entry: _Entry, now: float, ttl: float) -> bool:
    return now - entry.loaded_at <= ttl + float(settings.SDK_KEY_STALE_IF_ERROR)


def _refresh(token: str, digest: str, stale: _Entry | None, now: float, ttl: float) -> _Entry:
    """Load the entry; in a database outage fall back to ``stale`` within its bound."""
    try:
        entry = _load(token, digest, now)
    except DatabaseError:
        if stale is not None and _within_stale_bound(stale, now, ttl):
            stale.retry_at = now + float(settings.SDK_KEY_OUTAGE_RETRY_SECONDS)
            logger.warning(
                "database unavailable: SDK key lookup served from the expired cache entry "
                "(stale for %.0f s, bound SDK_KEY_STALE_IF_ERROR)",
                now - stale.loaded_at - ttl,
            )
            return stale
        logger.warning("database unavailable: cannot authenticate an uncached SDK key")
        raise AuthFailure(
            503,
            "the SDK key store is unavailable; retry later",
            retry_after=_outage_retry_after(),
        ) from None
    with _lock:
        if len(_cache) >= _MAX_CACHE_ENTRIES:
            _cache.clear()
        _cache[digest] = entry
    return entry


def token_from_headers(headers: Any) -> str | None:
    """The token of a request: ``Authorization: Bearer <t>`` or ``X-API-Key: <t>``."""
    auth = headers.get("Authorization") or ""
    if auth[:7].lower() == "bearer ":
        token = auth[7:].strip()
        if token:
            return str(token)
    api_key = headers.get("X-API-Key")
    if api_key:
        return str(api_key).strip() or None
    return None
