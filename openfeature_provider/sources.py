"""Where snapshots come from: one small interface and its implementations.

The interface (``SnapshotSource``) is deliberately two methods, so that anything able to hand
over a parsed ``Ruleset`` can feed the provider — the Django app's ``DjangoSource`` reads its
in-process cache; tests push documents by hand::

    class SnapshotSource(Protocol):
        def start(self, listener: SnapshotListener) -> None: ...   # must not block for long
        def stop(self) -> None: ...                                # idempotent, joins threads

    class SnapshotListener(Protocol):
        def on_snapshot(self, ruleset: Ruleset) -> None: ...
        def on_error(self, exc: BaseException, fatal: bool = False) -> None: ...

Rules a source follows (the provider relies on them):

- ``on_snapshot`` is called with every snapshot the source accepts, and MAY be called again
  with the current one to say "still current" (a 304, an SSE heartbeat); the provider compares
  etags, so this costs nothing and is how it learns that a failing source recovered.
- A document that fails validation is never delivered: the source reports
  ``InvalidSnapshot`` through ``on_error`` and the provider keeps the previous snapshot.
- ``on_error(exc, fatal=True)`` means the source has stopped for good. The HTTP sources never
  say that themselves: they report a rejected key (``AuthenticationError``) and keep retrying;
  the provider stops them if it holds no snapshot at all.
  Error classes are in ``openfeature_provider.exceptions``: ``SourceUnavailable`` is
  transient; anything else non-fatal is reported as PROVIDER_ERROR.
- Callbacks come from the source's own thread (or the caller's thread for ``InMemorySource``)
  and never concurrently for one source.

Implementations: ``InMemorySource`` (tests, embedding), ``FileSource`` (offline mode and
bootstrap, optionally watched), ``PollingSource`` (GET /sdk/v1/ruleset with ETag) and
``StreamingSource`` (SSE announcements, reconnect with backoff, falls back to polling).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from openfeature_provider.engine import ParseError, Ruleset, parse_delta, parse_ruleset
from openfeature_provider.engine.swap import freeze_wanted, loads
from openfeature_provider.exceptions import InvalidSnapshot, SourceError, SourceUnavailable
from openfeature_provider.remote import Backoff, PollingSource, StreamingSource

__all__ = [
    "Backoff",
    "FileSource",
    "InMemorySource",
    "PollingSource",
    "SnapshotListener",
    "SnapshotSource",
    "StreamingSource",
    "to_ruleset",
]

logger = logging.getLogger("flagapp.provider")


@runtime_checkable
class SnapshotListener(Protocol):
    """What a source reports to (the provider implements it)."""

    def on_snapshot(self, ruleset: Ruleset) -> None: ...

    def on_error(self, exc: BaseException, fatal: bool = False) -> None: ...


@runtime_checkable
class SnapshotSource(Protocol):
    """Something that delivers snapshots to a listener until stopped."""

    def start(self, listener: SnapshotListener) -> None: ...

    def stop(self) -> None: ...


def to_ruleset(
    doc: Ruleset | Mapping[str, Any] | str | bytes, previous: Ruleset | None = None
) -> Ruleset:
    """Parse ``doc`` unless it already is a Ruleset; ParseError becomes InvalidSnapshot.

    ``previous``: the ruleset this source delivered last; what did not change is reused
    (an incremental parse, same result as a full one).
    """
    if isinstance(doc, Ruleset):
        return doc
    try:
        # served for a while: frozen out of the collector's walks (engine/swap.py); the
        # decoded document is not kept (the last-known-good file is rebuilt from the ruleset)
        return parse_ruleset(doc, previous=previous, freeze=freeze_wanted(), keep_raw=False)
    except ParseError as exc:
        raise InvalidSnapshot(f"ruleset rejected: {exc}") from exc


class InMemorySource:
    """Snapshots handed over in code: for tests, and for services that build rules themselves.

    ``update(doc)`` parses and delivers synchronously, in the caller's thread, so a test sees
    the effect (and the provider's event) right after the call. ``fail(exc)`` reports an error
    as a network source would, to exercise the provider's STALE/ERROR handling.
    """

    def __init__(self, doc: Ruleset | Mapping[str, Any] | str | bytes | None = None) -> None:
        self._current: Ruleset | None = to_ruleset(doc) if doc is not None else None
        self._listener: SnapshotListener | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> Ruleset | None:
        return self._current

    def start(self, listener: SnapshotListener) -> None:
        with self._lock:
            self._listener = listener
            current = self._current
        if current is not None:
            listener.on_snapshot(current)

    def stop(self) -> None:
        with self._lock:
            self._listener = None

    def update(self, doc: Ruleset | Mapping[str, Any] | str | bytes) -> None:
        """Deliver a new snapshot; an invalid one is reported to the listener and raised."""
        try:
            ruleset = to_ruleset(doc, self._current)
        except InvalidSnapshot as exc:
            listener = self._listener
            if listener is not None:
                listener.on_error(exc)
            raise
        with self._lock:
            self._current = ruleset
            listener = self._listener
        if listener is not None:
            listener.on_snapshot(ruleset)

    def apply_delta(self, delta: Mapping[str, Any] | str | bytes) -> None:
        """Deliver the snapshot a delta (docs/protocol.md, "Deltas") leads to from the current
        one, built from the current ruleset itself (``engine.parse_delta``: only what the
        delta carries is parsed). A delta that does not apply is reported and raised as
        ``InvalidSnapshot``, like an invalid document."""
        current = self._current
        try:
            if current is None:
                raise InvalidSnapshot("delta: no snapshot held to apply it to")
            try:
                ruleset = parse_delta(delta, previous=current, freeze=freeze_wanted())
            except ParseError as exc:  # DeltaMismatch included
                raise InvalidSnapshot(f"delta rejected: {exc}") from exc
        except InvalidSnapshot as exc:
            listener = self._listener
            if listener is not None:
                listener.on_error(exc)
            raise
        with self._lock:
            self._current = ruleset
            listener = self._listener
        if listener is not None:
            listener.on_snapshot(ruleset)

    def fail(self, exc: BaseException, fatal: bool = False) -> None:
        """Report ``exc`` as if fetching had failed (the current snapshot stays)."""
        listener = self._listener
        if listener is not None:
            listener.on_error(exc, fatal=fatal)

    def confirm(self) -> None:
        """Re-deliver the current snapshot, as a 304 or a heartbeat would."""
        listener, current = self._listener, self._current
        if listener is not None and current is not None:
            listener.on_snapshot(current)


class FileSource:
    """A ruleset read from a file: offline mode, or a bootstrap shipped with the service.

    The file holds either a format-v1 document or a last-known-good file written by the
    provider (so ``cache_path`` of one deployment can seed another). With ``watch=True`` a
    thread checks the file's (mtime, size, inode) every ``watch_interval`` seconds and reloads
    it on change; a bad new version is reported and the previous one kept.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, watch: bool = False, watch_interval: float = 1.0
    ) -> None:
        self.path = Path(path)
        self.watch = watch
        self.watch_interval = watch_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._signature: tuple[int, int, int] | None = None
        self._listener: SnapshotListener | None = None
        self._delivered: Ruleset | None = None

    def start(self, listener: SnapshotListener) -> None:
        self._listener = listener
        self._stop.clear()
        self._check(force=True)
        if self.watch and self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"flagapp-file-watch:{self.path.name}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.watch_interval):
            self._check(force=False)

    def _check(self, *, force: bool) -> None:
        listener = self._listener
        if listener is None:
            return
        try:
            st = self.path.stat()
        except OSError as exc:
            if force or self._signature is not None:
                self._signature = None
                listener.on_error(SourceUnavailable(f"file {self.path}: {exc.strerror}"))
            return
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        if not force and signature == self._signature:
            return
        self._signature = signature
        try:
            ruleset = self.read(self.path, self._delivered)
        except SourceError as exc:
            listener.on_error(exc)
            return
        self._delivered = ruleset
        listener.on_snapshot(ruleset)

    @staticmethod
    def read(path: Path, previous: Ruleset | None = None) -> Ruleset:
        """Parse a ruleset or last-known-good file; raises InvalidSnapshot/SourceUnavailable.

        ``previous``: the ruleset read last (an incremental parse reuses its unchanged flags).
        """
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceUnavailable(f"file {path}: {exc.strerror}") from exc
        try:
            doc = loads(data)
        except ValueError as exc:
            raise InvalidSnapshot(f"file {path}: not JSON ({exc})") from exc
        if isinstance(doc, dict) and "lkg_format" in doc:
            doc = doc.get("ruleset")
        try:
            return to_ruleset(doc, previous)
        except InvalidSnapshot as exc:
            raise InvalidSnapshot(f"file {path}: {exc}") from exc
