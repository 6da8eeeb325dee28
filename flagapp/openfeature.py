"""OpenFeature inside Django: a snapshot source fed by the in-process evaluation cache.

::

    from openfeature import api
    from flagapp.openfeature import get_provider

    api.set_provider(get_provider())          # evaluates locally: no HTTP, no extra copy
    api.get_client().get_boolean_value("checkout.new-flow", False, ctx)

``DjangoSource`` implements the provider's ``SnapshotSource`` protocol
(``start(listener)`` / ``stop()``; ``listener.on_snapshot(ruleset)``,
``listener.on_error(exc, fatal=False)``). It hands the provider the very ``Ruleset`` object
``flagapp.evaluate`` uses: on start, and each time evaluation swaps a newer version in
(a same-process publish at once; another process's publish within
``FLAGAPP["CACHE_CHECK_INTERVAL"]``, checked by a small daemon thread so a process that only
uses the OpenFeature client still follows changes). ``flagapp.testutils.override_flag``
applies here too: overridden flags are replaced in the delivered ruleset.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import TYPE_CHECKING, Any, Protocol

from openfeature_provider.engine import parse_ruleset
from openfeature_provider.exceptions import SourceUnavailable

from . import evaluation
from .conf import settings

if TYPE_CHECKING:
    from openfeature_provider.engine import Ruleset

__all__ = ["DjangoSource", "get_provider"]

logger = logging.getLogger("flagapp")


class _Listener(Protocol):
    def on_snapshot(self, ruleset: Ruleset) -> None: ...

    def on_error(self, exc: BaseException, fatal: bool = False) -> None: ...


class DjangoSource:
    """Snapshots of one environment (default ``FLAGAPP["ENVIRONMENT"]``) from this process."""

    def __init__(self, environment: str | None = None, *, poll: bool = True) -> None:
        self.environment = environment
        self.poll = poll
        self._listener: _Listener | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delivered: Ruleset | None = None
        self._delivered_key: tuple[str, int, tuple[tuple[str, str], ...]] | None = None
        self._lock = threading.Lock()

    @property
    def env_key(self) -> str:
        return self.environment or evaluation.default_environment()

    def start(self, listener: _Listener) -> None:
        with self._lock:
            self._listener = listener
            self._delivered_key = None
            self._delivered = None
        self._stop.clear()
        evaluation.subscribe(self._on_change)
        ruleset = _get_ruleset_closing_own_connections(self.env_key)
        if ruleset is None and not evaluation.overrides():
            listener.on_error(
                SourceUnavailable(f"no snapshot is published for environment {self.env_key!r}"),
                False,
            )
        else:
            self._deliver(ruleset)
        if self.poll and self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="flagapp-django-source", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        evaluation.unsubscribe(self._on_change)
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._listener = None

    # evaluation calls this with the environment that changed (None: overrides changed)
    def _on_change(self, env_key: str | None) -> None:
        if env_key is None or env_key == self.env_key:
            self._deliver(evaluation.current_ruleset(self.env_key))

    def _run(self) -> None:
        """Follow other processes' publishes: a cache read per interval, a query only when
        the version changed (the swap then reaches us through ``_on_change``)."""
        from django.db import connections

        try:
            while not self._stop.wait(self._interval()):
                try:
                    # A swap reaches the listener through _on_change; otherwise confirm the
                    # current snapshot ("still current"), as a 304 would.
                    self._deliver(evaluation.get_ruleset(self.env_key), confirm=True)
                except Exception as exc:  # get_ruleset logs and never raises; belt and braces
                    listener = self._listener
                    if listener is not None:
                        listener.on_error(exc, False)
        finally:
            # This thread's own database connections (opened only when a new version had to
            # be read from the database) must not outlive it.
            connections.close_all()

    @staticmethod
    def _interval() -> float:
        try:
            return max(0.05, float(settings.CACHE_CHECK_INTERVAL))
        except Exception:
            return 1.0

    def _deliver(self, base: Ruleset | None, *, confirm: bool = False) -> None:
        """Hand the listener ``base`` with the test overrides applied. Serialised by a lock:
        the provider expects one callback at a time from a source."""
        active = evaluation.overrides()
        key = (
            base.etag if base is not None else "",
            base.version if base is not None else 0,
            tuple(sorted((k, repr(v)) for k, v in active.items())),
        )
        with self._lock:
            listener = self._listener
            if listener is None:
                return
            if key == self._delivered_key:
                if confirm and self._delivered is not None:
                    listener.on_snapshot(self._delivered)
                return
            try:
                ruleset = with_overrides(base, active, self.env_key) if active else base
            except Exception as exc:
                listener.on_error(exc, False)
                return
            if ruleset is None:
                return
            self._delivered_key = key
            self._delivered = ruleset
            listener.on_snapshot(ruleset)


def _get_ruleset_closing_own_connections(env_key: str) -> Ruleset | None:
    """``evaluation.get_ruleset``, closing any database connection the call itself opened.

    ``start`` runs in whatever thread the OpenFeature SDK initialises providers in (its own,
    short-lived one for ``set_provider``); a connection opened there would otherwise stay
    open after the thread is gone. Connections that were already open are left alone.
    """
    from django.db import connections

    open_before = {alias for alias in connections if connections[alias].connection is not None}
    try:
        return evaluation.get_ruleset(env_key)
    finally:
        for alias in connections:
            conn = connections[alias]
            if (
                alias not in open_before
                and conn.connection is not None
                and not conn.in_atomic_block
            ):
                conn.close()


def with_overrides(base: Ruleset | None, active: dict[str, Any], env_key: str) -> Ruleset:
    """``base`` with each overridden flag replaced by one serving the forced value."""
    if base is not None and base.raw:
        doc = dict(base.raw)
        flags = dict(doc.get("flags") or {})
    else:
        from .documents import envelope

        doc = envelope(
            environment=env_key,
            version=base.version if base is not None else 0,
            etag=base.etag if base is not None else "override",
        )
        flags = {}
    for key, value in active.items():
        flags[key] = {
            "kind": evaluation.kind_of(value) or "object",
            "enabled": True,
            "variants": {"override": value},
            "fallthrough": {"variant": "override"},
            "metadata": {"override": True},
        }
    doc["flags"] = flags
    # A distinct ETag: the provider swaps only when the ETag changes.
    digest = hashlib.sha256(repr(sorted((k, repr(v)) for k, v in active.items())).encode())
    doc["etag"] = f"{doc.get('etag') or ''}+override:{digest.hexdigest()[:16]}"
    # Prerequisites on an overridden flag now point at the override, which is what a test
    # forcing the flag means.
    return parse_ruleset(doc)


def get_provider(environment: str | None = None, **provider_options: Any) -> Any:
    """A ``FlagappProvider`` reading this process's evaluation cache (no HTTP)."""
    from openfeature_provider import FlagappProvider

    return FlagappProvider(source=DjangoSource(environment), **provider_options)
