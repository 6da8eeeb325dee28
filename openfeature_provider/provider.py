"""The OpenFeature provider: wires a snapshot source to the engine, and nothing more.

Design points (each one is a requirement of the provider issue):

- **Evaluation takes no lock.** The current snapshot is one attribute holding an immutable
  ``Ruleset``; a new snapshot replaces it with a single assignment, so a reader sees the old or
  the new one, never a mix. Everything on the resolve path is pre-built: the flag metadata
  mapping comes from the engine, result objects for the engine's pre-built resolutions are
  cached per snapshot, and exposure sampling is one ``random()`` comparison.
- **Nothing but OpenFeature errors leaves it.** Resolvers return error details (never raise);
  ``initialize`` raises only ``ProviderNotReadyError`` / ``ProviderFatalError``.
- **Events** (the SDK emits READY itself after ``initialize``; we never send a second one
  except as the recovery signal after STALE or ERROR):
  PROVIDER_CONFIGURATION_CHANGED with the exact changed flag keys on each new snapshot;
  PROVIDER_STALE once the source has been failing and the served snapshot was last confirmed
  more than ``stale_after`` seconds ago (also when an old last-known-good file is served);
  PROVIDER_ERROR with a message for a rejected snapshot, a rejected SDK key while a snapshot
  is held (which keeps being served; the source keeps retrying) or an unexpected response,
  then STALE if that lasts past the window; PROVIDER_ERROR with error code PROVIDER_FATAL only
  for a rejected key while nothing at all is held; PROVIDER_READY on recovery.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Final, Unpack

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent, ProviderEventDetails
from openfeature.exception import (
    ProviderFatalError,
    ProviderNotReadyError,
)
from openfeature.hook import Hook
from openfeature.provider import AbstractProvider, Metadata

from openfeature_provider.config import DEFAULT_NAME, ProviderConfig, ProviderOptions
from openfeature_provider.engine import (
    Resolution,
    Ruleset,
    changed_flag_keys,
)
from openfeature_provider.exceptions import (
    AuthenticationError,
    ConfigurationError,
    SourceError,
)
from openfeature_provider.health import _ERROR, _FALLBACKS, _FATAL, _OK, _STALE, Health
from openfeature_provider.lkg import LastKnownGood
from openfeature_provider.remote import PollingSource, StreamingSource
from openfeature_provider.resolving import Cached, Resolving
from openfeature_provider.sources import FileSource, SnapshotSource
from openfeature_provider.tracking import EventBuffer, EventSender, UsageCounter
from openfeature_provider.transport import (
    RulesetClient,
    SdkKey,
)

__all__ = ["PROVIDER_NAME", "FlagappProvider"]

PROVIDER_NAME: Final = DEFAULT_NAME
logger = logging.getLogger("flagapp.provider")

_NO_HOOKS: Final[list[Hook]] = []

_TRACKING_STATS: Final = (
    "recorded",
    "buffered",
    "overflow_dropped",
    "sent",
    "rejected",
    "invalid_events",
    "batches_sent",
    "failed_posts",
    "dropped_batches",
    "dropped_events",
    "pending_batches",
    "pending_events",
    "usage_events",
    "usage_evaluations",
    "usage_pending",
)


class _Listener:
    """The SnapshotListener handed to the source; forwards to the provider until detached."""

    __slots__ = ("provider",)

    def __init__(self, provider: FlagappProvider) -> None:
        self.provider: FlagappProvider | None = provider

    def on_snapshot(self, ruleset: Ruleset) -> None:
        provider = self.provider
        if provider is not None:
            provider._on_snapshot(ruleset)

    def on_error(self, exc: BaseException, fatal: bool = False) -> None:
        provider = self.provider
        if provider is not None:
            provider._on_error(exc, fatal)


class FlagappProvider(Resolving, Health, AbstractProvider):
    """OpenFeature provider evaluating flagapp rulesets locally.

    Either give ``url`` and ``sdk_key`` (HTTP polling, or SSE streaming with ``stream=True``)
    or a ready ``source`` (``InMemorySource``, ``FileSource``, the Django app's
    ``DjangoSource``, your own). Every option is described in docs/provider.md.
    """

    def __init__(
        self,
        url: str | None = None,
        sdk_key: SdkKey | None = None,
        *,
        config: ProviderConfig | None = None,
        **options: Unpack[ProviderOptions],
    ) -> None:
        """Options as keywords, or as a ``ProviderConfig`` (keywords override its fields).

        Raises ConfigurationError (a ValueError) naming an invalid option.
        """
        super().__init__()
        cfg = config or ProviderConfig()
        given: dict[str, Any] = dict(options)
        if url is not None:
            given["url"] = url
        if sdk_key is not None:
            given["sdk_key"] = sdk_key
        if given:
            cfg = cfg.replace(**given)
        #: The options in force (read-only).
        self.config = cfg
        url, sdk_key = cfg.url, cfg.sdk_key
        source = cfg.source
        cache_path = cfg.cache_path
        bootstrap_path = cfg.bootstrap_path
        stream = cfg.stream
        poll_interval = cfg.poll_interval
        connect_timeout = cfg.connect_timeout
        read_timeout = cfg.read_timeout
        fetch_timeout = cfg.fetch_timeout
        max_response_bytes = cfg.max_response_bytes
        init_timeout = cfg.init_timeout
        stale_after = cfg.stale_after
        backoff_base = cfg.backoff_base
        backoff_max = cfg.backoff_max
        stream_read_timeout = cfg.stream_read_timeout
        stream_fallback_after = cfg.stream_fallback_after
        stream_retry_interval = cfg.stream_retry_interval
        send_events = cfg.send_events
        event_sink = cfg.event_sink
        exposure_sample_rate = cfg.exposure_sample_rate
        event_capacity = cfg.event_capacity
        event_batch_size = cfg.event_batch_size
        event_flush_interval = cfg.event_flush_interval
        event_retry_base = cfg.event_retry_base
        event_max_attempts = cfg.event_max_attempts
        name = cfg.name

        remote: PollingSource | StreamingSource | None = None
        if source is None:
            if not url or not sdk_key:
                raise ConfigurationError("url", "give url and sdk_key, or a source")
            common: dict[str, Any] = {
                "poll_interval": poll_interval,
                "connect_timeout": connect_timeout,
                "read_timeout": read_timeout,
                "fetch_timeout": fetch_timeout,
                "max_response_bytes": max_response_bytes,
                "backoff_base": backoff_base,
                "backoff_max": backoff_max,
            }
            if stream:
                remote = StreamingSource(
                    url,
                    sdk_key,
                    stream_read_timeout=stream_read_timeout,
                    fallback_after=stream_fallback_after,
                    stream_retry_interval=stream_retry_interval,
                    **common,
                )
            else:
                remote = PollingSource(url, sdk_key, **common)
            source = remote
        self.source: SnapshotSource = source
        self.init_timeout = init_timeout
        self.stale_after = stale_after
        # the file is bound to the server and the key's environment (issue 11 finding 6)
        self.lkg: LastKnownGood | None = (
            None
            if not cache_path
            else LastKnownGood(cache_path, server=url, sdk_key=sdk_key)
            if remote is not None
            else LastKnownGood(cache_path)
        )
        self.bootstrap_path = Path(bootstrap_path) if bootstrap_path else None
        self._metadata = Metadata(name=name)

        # tracking: to the flag server when we talk to one, else to event_sink if given
        post = event_sink
        self._event_client: RulesetClient | None = None
        if post is None and send_events and url and sdk_key:
            if remote is not None:
                post = remote.client.post_events
            else:  # a custom source that still reports events to a flag server
                self._event_client = RulesetClient(
                    url,
                    sdk_key,
                    connect_timeout=connect_timeout,
                    read_timeout=read_timeout,
                    fetch_timeout=fetch_timeout,
                )
                post = self._event_client.post_events
        self.events: EventBuffer | None = EventBuffer(event_capacity) if post else None
        #: Evaluation counts per (flag, variant), sent every ``usage_interval`` seconds
        #: (``send_usage``, on by default wherever events can be sent); None when off.
        self._usage: UsageCounter | None = (
            UsageCounter() if cfg.send_usage and self.events is not None else None
        )
        self._sender: EventSender | None = (
            EventSender(
                self.events,
                post,
                batch_size=event_batch_size,
                flush_interval=event_flush_interval,
                retry_base=event_retry_base,
                backoff_max=max(event_retry_base, 60.0),
                max_attempts=event_max_attempts,
                usage=self._usage,
                usage_interval=cfg.usage_interval,
            )
            if post and self.events is not None
            else None
        )
        self._sample_rate = exposure_sample_rate if self.events is not None else 0.0

        self._snapshot: Ruleset | None = None
        #: What the hot path reads, in one attribute so it is swapped in one assignment: the
        #: ruleset served and its result objects (by ``id`` of the compiled flag's pre-built
        #: resolution, which unchanged flags share across versions: a cache that outlived its
        #: ruleset would serve the old ``snapshotVersion``).
        self._serving: tuple[Ruleset | None, dict[int, tuple[Resolution, Cached]]]
        self._serving = (None, {})

        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._listener: _Listener | None = None
        self._health = _OK
        self._initializing = False
        self._initialized = False
        self._closed = False
        self._failures = 0
        self._last_error: BaseException | None = None
        self._fatal: BaseException | None = None
        self._last_confirmed = 0.0  # wall clock: comparable with a saved_at from disk
        self._lkg_etag: str | None = None
        self._stale_timer: threading.Timer | None = None
        #: Where the served snapshot came from: "source", "last-known-good", "bootstrap", None.
        self.served_from: str | None = None

    # -- OpenFeature plumbing ---------------------------------------------------------------
    def get_metadata(self) -> Metadata:
        return self._metadata

    def get_provider_hooks(self) -> list[Hook]:
        return _NO_HOOKS

    @property
    def snapshot(self) -> Ruleset | None:
        """The ruleset being served (None before the first one)."""
        return self._snapshot

    def tracking_stats(self) -> dict[str, int]:
        """Event delivery counters: recorded, sent, rejected, invalid_events, failed_posts,
        dropped_batches, dropped_events, pending_events, ... (zeros when events are off)."""
        if self._sender is not None:
            return self._sender.stats()
        return dict.fromkeys(_TRACKING_STATS, 0)

    @property
    def health(self) -> str:
        """What the provider last signalled: "ok", "stale", "error" or "fatal"."""
        return self._health

    # -- lifecycle --------------------------------------------------------------------------
    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Wait up to ``init_timeout`` for a first snapshot, else use the last-known-good file.

        Raises ProviderFatalError for a rejected SDK key and ProviderNotReadyError when there is
        neither a snapshot nor a usable last-known-good file (the source keeps trying; a later
        snapshot moves the provider to READY).
        """
        with self._lock:
            if self._closed:
                raise ProviderNotReadyError("flagapp provider was shut down")
            if self._initialized:
                return
            self._initializing = True
            listener = self._listener = _Listener(self)
        deadline = time.monotonic() + self.init_timeout
        try:
            self.source.start(listener)
        except Exception as exc:
            self._on_error(exc, getattr(exc, "fatal", False))
        tried_lkg = False
        try:
            while True:
                with self._lock:
                    snapshot, fatal, failed = self._snapshot, self._fatal, self._failures > 0
                if snapshot is not None:
                    break
                if fatal is not None:
                    with self._lock:
                        self._health = _FATAL
                    self._stop_source()
                    raise ProviderFatalError(f"flagapp: {fatal}")
                if failed and not tried_lkg:
                    tried_lkg = True
                    if self._serve_fallback():
                        break
                if tried_lkg and isinstance(self._last_error, AuthenticationError):
                    # a rejected key and nothing to serve: the one fatal case (finding 4)
                    with self._lock:
                        self._fatal = self._last_error
                        self._health = _FATAL
                    self._stop_source()
                    raise ProviderFatalError(f"flagapp: {self._fatal}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)
                self._wake.clear()
            if self._snapshot is None and not tried_lkg:
                self._serve_fallback()
        finally:
            with self._lock:
                # Decided under the lock: a snapshot arriving from now on sees "initialized"
                # and, if we fail here, signals READY itself.
                self._initializing = False
                self._initialized = True
                failed = self._snapshot is None and self._fatal is None
                if failed:
                    self._health = _ERROR
        if failed:
            reason = self._last_error or f"no snapshot within {self.init_timeout:g}s"
            raise ProviderNotReadyError(
                f"flagapp: no snapshot and no last-known-good or bootstrap file ({reason})"
            )
        if self._sender is not None:
            self._sender.start()
        if self.served_from in _FALLBACKS:
            # ERROR/STALE must follow the SDK's READY, which it emits right after we return.
            timer = threading.Timer(0.05, self._after_fallback)
            timer.daemon = True
            self._stale_timer = timer
            timer.start()

    def shutdown(self) -> None:
        """Stop the source and the event thread and flush events; safe to call repeatedly."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            timer, self._stale_timer = self._stale_timer, None
        if timer is not None:
            timer.cancel()
        if self._sender is not None:  # first: it may share the source's HTTP client
            self._sender.close()
        if self._event_client is not None:
            self._event_client.close()
        self._stop_source()

    def _stop_source(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.provider = None
        try:
            self.source.stop()
        except Exception:
            logger.exception("flagapp: stopping the snapshot source failed")

    def _serve_fallback(self) -> bool:
        """The last-known-good file, else the bootstrap file; False if neither is usable."""
        return self._serve_last_known_good() or self._serve_bootstrap()

    def _serve_bootstrap(self) -> bool:
        if self.bootstrap_path is None:
            return False
        try:
            ruleset = FileSource.read(self.bootstrap_path)
        except SourceError as exc:
            logger.warning("flagapp: ignoring bootstrap file: %s", exc)
            return False
        with self._lock:
            if self._snapshot is not None:
                return True
            self._install(ruleset)
            self._last_confirmed = 0.0  # never confirmed by the server
            self.served_from = "bootstrap"
        logger.warning(
            "flagapp: serving bootstrap file %s (%s v%s): %s",
            self.bootstrap_path,
            ruleset.environment,
            ruleset.version,
            self._last_error or "server not reachable in time",
        )
        return True

    def _serve_last_known_good(self) -> bool:
        if self.lkg is None:
            return False
        loaded = self.lkg.load()
        if loaded is None:
            return False
        with self._lock:
            if self._snapshot is not None:  # the source won the race
                return True
            self._install(loaded.ruleset)
            self._lkg_etag = loaded.etag
            self._last_confirmed = loaded.saved_at
            self.served_from = "last-known-good"
        logger.warning(
            "flagapp: serving last-known-good snapshot %s v%s saved %.0fs ago (%s)",
            loaded.ruleset.environment,
            loaded.ruleset.version,
            loaded.age,
            self._last_error or "server not reachable in time",
        )
        return True

    def _install(self, ruleset: Ruleset) -> None:
        """Serve ``ruleset`` from now on (lock held): one assignment for the hot path."""
        self._snapshot = ruleset
        self._serving = (ruleset, {})

    # -- source callbacks -------------------------------------------------------------------
    def _on_snapshot(self, ruleset: Ruleset) -> None:
        emit: list[tuple[ProviderEvent, ProviderEventDetails]] = []
        save = False
        with self._lock:
            if self._closed:
                return
            old = self._snapshot
            self._last_confirmed = time.time()
            self._failures = 0
            self._last_error = None
            self.served_from = "source"  # new, or the file's snapshot confirmed by the server
            if old is None or old.etag != ruleset.etag:
                self._install(ruleset)  # the atomic swap readers rely on
                save = self.lkg is not None and ruleset.etag != self._lkg_etag
                if old is not None and not self._initializing:
                    # one event per new snapshot; flags_changed is exact (may be empty when
                    # only the version moved, e.g. a republish)
                    changed = changed_flag_keys(old, ruleset)
                    emit.append(
                        (
                            ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
                            ProviderEventDetails(flags_changed=sorted(changed)),
                        )
                    )
            if self._health in (_STALE, _ERROR) and self._initialized and not self._initializing:
                emit.append(
                    (
                        ProviderEvent.PROVIDER_READY,
                        ProviderEventDetails(message="flagapp: snapshots flowing again"),
                    )
                )
            if self._health != _FATAL:
                self._health = _OK
            # Emitted under the lock so a concurrent STALE (the timer) cannot overtake READY.
            for event, details in emit:
                self.emit(event, details)
        self._wake.set()
        if save:
            self._save(ruleset)

    def _save(self, ruleset: Ruleset) -> None:
        assert self.lkg is not None
        if ruleset.build is None and not ruleset.raw:  # built in code: nothing to write back
            return
        try:
            self.lkg.save(ruleset)
            self._lkg_etag = ruleset.etag
        except Exception as exc:  # caching must never break serving
            logger.warning("flagapp: cannot write last-known-good file %s: %s", self.lkg.path, exc)
