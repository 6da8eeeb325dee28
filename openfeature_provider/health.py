"""The provider's health: what a source error means for the OpenFeature world.

``_on_error`` decides between PROVIDER_ERROR (a rejected snapshot, a rejected key while a
snapshot is held, an unexpected answer), PROVIDER_FATAL (a source stopped for good, or a
rejected key with nothing held) and nothing yet (a transient failure), and ``_stale_event``
when a failing source has left the served snapshot unconfirmed for longer than
``stale_after``: PROVIDER_STALE. Split from provider.py, whose ``FlagappProvider`` mixes it in
and owns the state (all read and written under its lock).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

from openfeature.event import ProviderEvent, ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.provider import AbstractProvider

from openfeature_provider.engine import Ruleset
from openfeature_provider.exceptions import AuthenticationError, InvalidSnapshot, SourceError

__all__ = ["FATAL", "Health"]

logger = logging.getLogger("flagapp.provider")

_STALE_MIN_FAILURES: Final = 2
_FALLBACKS: Final = ("last-known-good", "bootstrap")

# health states (the SDK keeps the authoritative status; this is what we last told it)
OK, STALE, ERROR, FATAL = "ok", "stale", "error", "fatal"
_OK, _STALE, _ERROR, _FATAL = OK, STALE, ERROR, FATAL


class Health(AbstractProvider):
    """Source errors -> provider events, over the state FlagappProvider keeps."""

    _lock: threading.RLock
    _wake: threading.Event
    _closed: bool
    _initialized: bool
    _initializing: bool
    _health: str
    _failures: int
    _last_error: BaseException | None
    _fatal: BaseException | None
    _last_confirmed: float
    _snapshot: Ruleset | None
    served_from: str | None
    stale_after: float

    def _stop_source(self) -> None:
        raise NotImplementedError

    def _on_error(self, exc: BaseException, fatal: bool = False) -> None:
        """What a source error means for the OpenFeature world (see the module docstring).

        - ``fatal=True`` (a source that stopped for good), or a rejected key (401/403) while
          nothing at all is held: PROVIDER_ERROR with PROVIDER_FATAL; the source is stopped.
          (During ``initialize`` a rejected key first lets the fallback files be tried.)
        - otherwise the held snapshot keeps being served: a transient error counts towards
          STALE; any other (a rejected key, a rejected snapshot, an unexpected answer)
          signals PROVIDER_ERROR once, then STALE once the snapshot is older than the window.
        """
        emit: tuple[ProviderEvent, ProviderEventDetails] | None = None
        stop_source = False
        with self._lock:
            if self._closed:
                return
            self._last_error = exc
            rejected_key = isinstance(exc, AuthenticationError)
            nothing_held = self._snapshot is None
            if (
                fatal
                or getattr(exc, "fatal", False)
                or (rejected_key and nothing_held and not self._initializing)
            ):
                logger.error("flagapp: snapshot source stopped: %s", exc)
                self._fatal = exc
                stop_source = self._initialized
                if self._initialized and self._health != _FATAL:
                    self._health = _FATAL
                    emit = (
                        ProviderEvent.PROVIDER_ERROR,
                        ProviderEventDetails(
                            message=f"flagapp: {exc}", error_code=ErrorCode.PROVIDER_FATAL
                        ),
                    )
            else:
                self._failures += 1
                logger.warning("flagapp: snapshot source error: %s", exc)
                if self._initialized and self._health != _FATAL:
                    transient = getattr(exc, "transient", False) and isinstance(exc, SourceError)
                    if not transient and self._health == _OK:
                        self._health = _ERROR
                        code = (
                            ErrorCode.PARSE_ERROR
                            if isinstance(exc, InvalidSnapshot)
                            else ErrorCode.GENERAL
                        )
                        message = f"flagapp: {exc}"
                        if rejected_key:
                            message += "; serving the snapshot held, retrying"
                        emit = (
                            ProviderEvent.PROVIDER_ERROR,
                            ProviderEventDetails(message=message, error_code=code),
                        )
                    else:
                        emit = self._stale_event()
            if emit is not None:
                self.emit(*emit)
        self._wake.set()
        if stop_source:
            self._stop_source()

    def _stale_event(self) -> tuple[ProviderEvent, ProviderEventDetails] | None:
        """STALE if failing and last confirmed longer ago than the window (lock held).

        "Failing" means at least two failures in a row (one lost poll is not a trend), or any
        failure while serving the last-known-good file (the server was already unreachable at
        start).
        """
        needed = 1 if self.served_from in _FALLBACKS else _STALE_MIN_FAILURES
        if self._health in (_STALE, _FATAL) or self._snapshot is None or self._failures < needed:
            return None
        age = time.time() - self._last_confirmed
        if age < self.stale_after:
            return None
        self._health = _STALE
        why = self._last_error or "source failing"
        if self.served_from == "bootstrap":
            message = f"flagapp: serving the bootstrap file, never confirmed by the server ({why})"
        else:
            what = "last-known-good file" if self.served_from == "last-known-good" else "snapshot"
            message = f"flagapp: serving a {what} last confirmed {age:.0f}s ago ({why})"
        return ProviderEvent.PROVIDER_STALE, ProviderEventDetails(message=message)

    def _check_stale(self) -> None:
        with self._lock:
            emit = None if self._closed else self._stale_event()
            if emit is not None:
                self.emit(*emit)

    def _after_fallback(self) -> None:
        """Right after ``initialize`` served a file: ERROR if the key was rejected, then STALE."""
        with self._lock:
            exc = self._last_error
            if not self._closed and self._health == _OK and isinstance(exc, AuthenticationError):
                self._health = _ERROR
                self.emit(
                    ProviderEvent.PROVIDER_ERROR,
                    ProviderEventDetails(
                        message=f"flagapp: {exc}; serving the {self.served_from} file",
                        error_code=ErrorCode.GENERAL,
                    ),
                )
        self._check_stale()
