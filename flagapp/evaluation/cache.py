"""The per-process snapshot cache: which ruleset this process serves, and how it stays fresh.

Why it is shaped like this (docs/django.md "How fresh is a flag", docs/deploy.md):

* The warm path must cost a few microseconds and make **no query**: a per-process dict maps
  an environment key to an entry ``(ruleset, version, next_check_at)``. Until
  ``time.monotonic()`` passes ``next_check_at`` nothing but that dict is read.
* Once per ``FLAGAPP["CACHE_CHECK_INTERVAL"]`` seconds a process asks whether a newer
  version was published anywhere. How it asks depends on the Django cache
  ``FLAGAPP["CACHE_ALIAS"]`` (:func:`cache_is_shared`):

  - **shared** (Redis, Memcached, database, file): one ``cache.get`` of the version pointer
    that every publisher sets (``flagapp.snapshot.cache_version_key``) — no query. A new
    version's document comes from the cache, else from the database, and is parsed once.
  - **per process** (LocMem, Dummy): that cache only ever holds what *this* process
    published, so it cannot tell of a change made by ``manage.py``, a Celery worker or
    another server worker. The check is then one cheap query, the latest published version
    of the environment (:func:`published_version`); the document is read only when the
    version moved.

  Either way a change made in any process is served within the check interval (plus the
  request that notices it). ``FLAGAPP["SHARED_CACHE"]`` overrides the detection.
* A publish in *this* process (``flagapp.signals.snapshot_published``) swaps the new ruleset
  in immediately; the Redis notifier calls :func:`expire` when another process announces one.
* With no snapshot at all every flag resolves to the caller's default with FLAG_NOT_FOUND
  (logged once per environment). A cache or database outage keeps the ruleset held.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.signals import setting_changed

from flagapp.conf import settings
from flagapp.publishing import cache_document_key, cache_version_key, latest
from flagapp.signals import snapshot_published
from openfeature_provider.engine import parse_ruleset
from openfeature_provider.engine.swap import freeze_wanted

if TYPE_CHECKING:
    from openfeature_provider.engine import Ruleset

__all__ = [
    "PER_PROCESS_CACHES",
    "apply_delta",
    "attribute_in_use",
    "cache_is_shared",
    "clear_cache",
    "connect",
    "current_ruleset",
    "default_environment",
    "document_text",
    "expire",
    "get_ruleset",
    "install",
    "is_warm",
    "published_version",
    "subscribe",
    "unsubscribe",
]

logger = logging.getLogger("flagapp")

#: Django cache backends whose data lives in one process: their content cannot tell a
#: process about a change published by another one.
PER_PROCESS_CACHES = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    }
)


class _Entry:
    """One environment's ruleset in this process. Mutated only under ``_lock``."""

    __slots__ = ("attrs", "etag", "next_check_at", "ruleset", "text", "version")

    def __init__(
        self,
        ruleset: Ruleset | None,
        version: int,
        next_check_at: float,
        text: str | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.version = version
        #: the stored JSON text of the snapshot ``ruleset`` was parsed from (the SDK views
        #: serve it as is: no re-encoding per process and version)
        self.text = text
        self.etag = ruleset.etag if ruleset is not None else ""
        self.next_check_at = next_check_at
        self.attrs = _referenced_attributes(ruleset) if ruleset is not None else frozenset()


_entries: dict[str, _Entry] = {}
_lock = threading.RLock()
_warned_missing: set[str] = set()
_listeners: list[Callable[[str | None], None]] = []
_monotonic = time.monotonic

#: Memo of settings read on the hot path; reset on ``setting_changed``.
_default_env: str | None = None
_shared: bool | None = None

#: Called with no argument whenever a new ruleset is swapped in (the evaluation details memo
#: of ``flagapp.evaluation.api`` registers its ``clear`` here).
_on_swap: list[Callable[[], None]] = []


def default_environment() -> str:
    """``FLAGAPP["ENVIRONMENT"]``, memoised (reset when the setting changes)."""
    global _default_env
    env = _default_env
    if env is None:
        env = _default_env = str(settings.ENVIRONMENT)
    return env


def cache_is_shared() -> bool:
    """Whether ``FLAGAPP["CACHE_ALIAS"]`` is seen by every process (memoised).

    ``FLAGAPP["SHARED_CACHE"]`` (True/False) decides when set; otherwise the backend class
    does: LocMem and Dummy are per process, every other backend (Redis, Memcached, database,
    file-based, third-party ones such as django-redis) is taken as shared.
    """
    global _shared
    shared = _shared
    if shared is None:
        forced = settings.SHARED_CACHE
        if forced is not None:
            shared = bool(forced)
        else:
            config = getattr(django_settings, "CACHES", {}).get(settings.CACHE_ALIAS, {})
            shared = config.get("BACKEND", "") not in PER_PROCESS_CACHES
        _shared = shared
    return shared


def get_ruleset(env_key: str | None = None) -> Ruleset | None:
    """This process's ruleset for ``env_key`` (default: ``FLAGAPP["ENVIRONMENT"]``).

    Warm and within the check interval: one dict lookup and one clock read.
    """
    env = env_key or default_environment()
    entry = _entries.get(env)
    if entry is not None and _monotonic() < entry.next_check_at:
        return entry.ruleset
    return refresh(env)


def current_ruleset(env_key: str | None = None) -> Ruleset | None:
    """What this process holds for ``env_key`` right now, without any check or query."""
    entry = _entries.get(env_key or default_environment())
    return entry.ruleset if entry is not None else None


def is_warm(env_key: str | None = None) -> bool:
    """True when ``get_ruleset`` would answer without touching the cache or the database."""
    entry = _entries.get(env_key or default_environment())
    return entry is not None and _monotonic() < entry.next_check_at


def attribute_in_use(attr: str, env_key: str | None = None) -> bool:
    """Whether a ruleset this process holds reads context attribute ``attr`` at all
    (``env_key`` None: any environment, since one request may evaluate several)."""
    if env_key is not None:
        entry = _entries.get(env_key)
        return entry is not None and attr in entry.attrs
    return any(attr in entry.attrs for entry in list(_entries.values()))


def published_version(env_key: str) -> tuple[int, str] | None:
    """``(version, etag)`` of the latest snapshot of ``env_key`` in the database (one indexed
    query, no document), or None when nothing is published. The freshness check of a
    per-process cache, and what the notifier confirms a Redis announcement against."""
    from flagapp.models import Snapshot  # models load after this module (apps registry)

    row = (
        Snapshot.objects.filter(environment__key=env_key)
        .order_by("-version")
        .values_list("version", "etag")
        .first()
    )
    return (int(row[0]), str(row[1])) if row is not None else None


def refresh(env: str) -> Ruleset | None:
    """Check for a newer version now (see the module docstring) and return what is held.

    Single flight: while one thread checks an environment whose ruleset is held, the others
    keep serving that ruleset instead of waiting (a slow cache or database then delays one
    request per interval, not every request). A cold environment is loaded by one thread
    while the others wait for it: they have nothing to serve meanwhile.
    """
    with _lock:
        entry = _entries.get(env)
        now = _monotonic()
        if entry is not None and now < entry.next_check_at:
            return entry.ruleset
        interval = float(settings.CACHE_CHECK_INTERVAL)
        if entry is not None and entry.ruleset is not None:
            entry.next_check_at = now + interval  # claimed: others see it warm meanwhile
            held = True
        else:
            held = False
    if held:
        ruleset, installed = _check(env, entry, now, interval)
    else:
        with _lock:
            entry = _entries.get(env)
            now = _monotonic()
            if entry is not None and now < entry.next_check_at:
                return entry.ruleset
            ruleset, installed = _check(env, entry, now, interval)
    if installed:
        _notify(env, ruleset)
    return ruleset


def _check(
    env: str, entry: _Entry | None, now: float, interval: float
) -> tuple[Ruleset | None, bool]:
    """One freshness check: ``(ruleset to serve, whether it was newly swapped in)``."""
    cache = _cache()
    shared = cache is not None and cache_is_shared()
    known_version: int | None = None
    try:
        if shared:
            value = cache.get(cache_version_key(env))
            known_version = int(value) if value is not None else None
        elif entry is not None:
            published = published_version(env)
            known_version = published[0] if published is not None else None
    except Exception:  # a cache or database outage must not break pages
        logger.warning("flagapp: could not check the snapshot version of %r", env, exc_info=True)
        if entry is not None:
            with _lock:
                entry.next_check_at = now + interval
            return entry.ruleset, False
    if entry is not None and known_version is not None and known_version == entry.version:
        with _lock:
            entry.next_check_at = now + interval
        return entry.ruleset, False
    try:
        document, version = _load_document(env, known_version, cache, shared)
    except Exception:
        logger.exception("flagapp: could not load the snapshot of environment %r", env)
        return _keep(env, entry, now + interval), False
    if document is None:
        if env not in _warned_missing:
            _warned_missing.add(env)
            logger.warning(
                "flagapp: no snapshot published for environment %r; every flag serves "
                "the caller's default (FLAG_NOT_FOUND) until one is",
                env,
            )
        return _keep(env, entry, now + interval), False
    if entry is not None and entry.ruleset is not None and version == entry.version:
        with _lock:
            entry.next_check_at = now + interval
        return entry.ruleset, False
    try:
        # incremental: the flags unchanged since the held ruleset are reused, not re-parsed
        held = entry.ruleset if entry is not None else None
        ruleset = parse_ruleset(document, previous=held, freeze=freeze_wanted())
    except Exception:
        logger.exception(
            "flagapp: snapshot %s of %r failed to parse; kept the old one", version, env
        )
        return _keep(env, entry, now + interval), False
    with _lock:
        current = _entries.get(env)
        if current is not None and current.ruleset is not None and current.version >= version:
            # A same-process publish swapped a newer (or this) version in meanwhile.
            return current.ruleset, False
        text = document if isinstance(document, str) else None
        _swap(env, _Entry(ruleset, version, now + interval, text))
    return ruleset, True


def _keep(env: str, entry: _Entry | None, next_check_at: float) -> Ruleset | None:
    """Nothing new could be taken: keep what is held (or remember there is nothing)."""
    with _lock:
        if entry is not None and entry.ruleset is not None:
            entry.next_check_at = next_check_at
            return entry.ruleset
        current = _entries.get(env)
        if current is not None and current.ruleset is not None:
            return current.ruleset  # swapped in by another thread meanwhile
        _entries[env] = _Entry(None, 0, next_check_at)
        return None


def _cache() -> Any:
    try:
        return caches[settings.CACHE_ALIAS]
    except Exception:
        logger.warning("flagapp: cache alias %r is not configured", settings.CACHE_ALIAS)
        return None


def _load_document(env: str, version: int | None, cache: Any, shared: bool) -> tuple[Any, int]:
    """The newest document: from the cache when it has that version, else from the database."""
    if version is not None and cache is not None:
        try:
            document = cache.get(cache_document_key(env, version))
        except Exception:
            document = None
        if document is not None:
            return document, version
    snap = latest(env)
    if snap is None:
        return None, 0
    if cache is not None and shared:
        # Re-seed an evicted or cold shared cache so the other processes stop asking the
        # database. ``add`` never overwrites a newer version another process just published.
        try:
            cache.add(cache_document_key(env, snap.version), snap.document)
            cache.add(cache_version_key(env), snap.version)
        except Exception:
            pass
    return snap.document, int(snap.version)


def _swap(env: str, entry: _Entry) -> None:
    _entries[env] = entry
    _warned_missing.discard(env)
    for callback in _on_swap:
        callback()


def install(
    env_key: str, ruleset: Ruleset, version: int | None = None, *, text: str | None = None
) -> None:
    """Swap in ``ruleset`` for ``env_key`` now (a same-process publish, or a test);
    ``text``: the stored JSON of its snapshot, when at hand."""
    interval = float(settings.CACHE_CHECK_INTERVAL)
    with _lock:
        _swap(
            env_key,
            _Entry(
                ruleset,
                ruleset.version if version is None else version,
                _monotonic() + interval,
                text,
            ),
        )
    _notify(env_key, ruleset)


def apply_delta(env_key: str, delta: str | Mapping[str, Any], version: int) -> bool:
    """Take the new ``version`` from a published ``delta`` (docs/protocol.md, "Deltas") when
    the held ruleset is its base: the engine compiles only what changed (``parse_delta``),
    instead of this process loading and parsing the whole document at its next check. The
    notifier calls it with the delta a Redis announcement carries (the store confirmed the
    version). False when it could not (another base, nothing held, a refusal): the held
    ruleset is then expired, so the next use checks as before."""
    from openfeature_provider.engine.delta import parse_delta

    entry = _entries.get(env_key)
    held = entry.ruleset if entry is not None else None
    try:
        if held is None or entry is None or entry.version >= version:
            raise LookupError("nothing older held")
        ruleset = parse_delta(delta, previous=held, freeze=freeze_wanted())
        if int(ruleset.version) != int(version):
            raise LookupError("the delta leads to another version")
    except Exception:
        expire(env_key)
        return False
    with _lock:
        current = _entries.get(env_key)
        if current is not None and current.ruleset is not None and current.version >= version:
            return True  # a newer (or this) version was swapped in meanwhile
        _swap(
            env_key,
            _Entry(ruleset, version, _monotonic() + float(settings.CACHE_CHECK_INTERVAL)),
        )
    _notify(env_key, ruleset)
    return True


def document_text(env_key: str, ruleset: Ruleset) -> str | None:
    """The stored JSON text of ``ruleset``'s snapshot when this process holds it (it was
    loaded from the cache or the database, or published here), else None."""
    entry = _entries.get(env_key)
    if entry is None or entry.ruleset is not ruleset:
        return None
    return entry.text


def clear_cache(env_key: str | None = None) -> None:
    """Forget this process's copy (all environments by default); the next call reloads."""
    global _shared
    with _lock:
        if env_key is None:
            _entries.clear()
            _warned_missing.clear()
            _shared = None
        else:
            _entries.pop(env_key, None)
            _warned_missing.discard(env_key)


def expire(env_key: str | None = None) -> None:
    """Make the next evaluation check for a newer version, keeping the current copy meanwhile."""
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


def notify_all() -> None:
    """Tell every listener that everything may have changed (the test overrides did)."""
    _notify(None, None)


def _notify(env: str | None, ruleset: Ruleset | None) -> None:
    if ruleset is None and env is not None:
        return
    for callback in list(_listeners):
        try:
            callback(env)
        except Exception:
            logger.exception("flagapp: ruleset listener %r failed", callback)


#: flag key -> (its rules, its fallthrough, the attributes they read): an incremental parse
#: shares the rules and fallthrough objects of every unchanged flag, so a new version only
#: walks the flags that changed (at 10,000 flags the full walk cost ~20-70 ms per swap)
_flag_attrs: dict[str, tuple[Any, Any, frozenset[str]]] = {}


def _referenced_attributes(ruleset: Ruleset) -> frozenset[str]:
    """Top-level context attributes any condition or rollout of the ruleset reads."""
    attrs: set[str] = set()
    for key, flag in ruleset.flags.items():
        known = _flag_attrs.get(key)
        if known is None or known[0] is not flag.rules or known[1] is not flag.fallthrough:
            known = (flag.rules, flag.fallthrough, _flag_attributes(flag))
            _flag_attrs[key] = known
        attrs |= known[2]
    for segment in ruleset.segments.values():
        _add_conditions(attrs, segment.when)
    if len(_flag_attrs) > 4 * max(1, len(ruleset.flags)) + 1000:
        _flag_attrs.clear()  # keys of flags long gone (or of many environments): start over
    return frozenset(attrs)


def _flag_attributes(flag: Any) -> frozenset[str]:
    attrs: set[str] = set()
    for rule in flag.rules:
        _add_conditions(attrs, rule.when)
        _add_serve(attrs, rule.serve)
    _add_serve(attrs, flag.fallthrough)
    return frozenset(attrs)


def _add_conditions(attrs: set[str], conditions: Iterable[Any]) -> None:
    for cond in conditions:
        if cond.attr:
            attrs.add(cond.attr.split(".", 1)[0])


def _add_serve(attrs: set[str], serve: Any) -> None:
    if serve is not None and serve.rollout is not None:
        attrs.add(serve.rollout.bucket_by.split(".", 1)[0])


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
            ruleset = parse_ruleset(
                snapshot.document, previous=current_ruleset(env), freeze=freeze_wanted()
            )
    except Exception:
        logger.exception("flagapp: published snapshot of %r failed to parse", env)
        expire(env)
        return
    text = getattr(snapshot, "document", None)
    install(env, ruleset, int(snapshot.version), text=text if isinstance(text, str) else None)


def _on_setting_changed(setting: str = "", **kwargs: Any) -> None:
    global _default_env, _shared
    if setting in ("FLAGAPP", "CACHES"):
        _default_env = None
        _shared = None
        expire()


def connect() -> None:
    """Connect the receivers; called from ``AppConfig.ready`` (idempotent)."""
    setting_changed.connect(_on_setting_changed, dispatch_uid="flagapp.evaluation.settings")
    snapshot_published.connect(_on_snapshot_published, dispatch_uid="flagapp.evaluation")
