"""The last-known-good file: the newest accepted snapshot, kept on disk.

Why: a service that restarts while the flag server is down must still answer with the rules
it last saw, not with every caller's default. So each accepted snapshot is written to
``cache_path`` and read back when the server cannot be reached at start-up.

File format (JSON, one object)::

    {"lkg_format": 1, "etag": "sha256:...", "saved_at": 1732380000.5,
     "environment": "production", "version": 42, "ruleset": {...format v1 document...}}

Writes are atomic: a temporary file in the same directory (unique per process and thread),
``fsync``, ``os.replace`` onto the path, ``fsync`` of the directory. Several processes of one
service may share the path: readers only ever see a whole file, and writers hold an advisory
lock (``fcntl.flock`` on ``<path>.lock`` where available) while they compare versions, so an
older snapshot never replaces a newer one of the same environment.

A file that is missing, truncated, not JSON, of another format, or whose ruleset fails
validation is ignored with a warning: the provider then behaves as if there were none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openfeature_provider.engine import Ruleset, parse_ruleset

try:  # POSIX only; elsewhere writes are still atomic, just not version-ordered.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LKG_FORMAT", "LastKnownGood", "LoadedSnapshot"]

LKG_FORMAT = 1
logger = logging.getLogger("flagapp.provider")


@dataclass(frozen=True, slots=True)
class LoadedSnapshot:
    """A ruleset read back from disk and when it was saved (epoch seconds)."""

    ruleset: Ruleset
    etag: str
    saved_at: float

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.saved_at)


class LastKnownGood:
    """Reads and atomically writes one last-known-good file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------------
    def load(self) -> LoadedSnapshot | None:
        """The stored snapshot, or None (with a warning unless the file simply is absent)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("flagapp: cannot read last-known-good file %s: %s", self.path, exc)
            return None
        try:
            return self._decode(data)
        except Exception as exc:  # any defect means "no usable file"
            logger.warning(
                "flagapp: ignoring last-known-good file %s (%s: %s)",
                self.path,
                type(exc).__name__,
                exc,
            )
            return None

    @staticmethod
    def _decode(data: bytes) -> LoadedSnapshot:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("lkg_format") != LKG_FORMAT:
            raise ValueError(f"not a flagapp last-known-good file (lkg_format {LKG_FORMAT})")
        etag = doc.get("etag")
        saved_at = doc.get("saved_at")
        if not isinstance(etag, str) or isinstance(saved_at, bool):
            raise ValueError("missing etag or saved_at")
        if not isinstance(saved_at, int | float):
            raise ValueError("saved_at is not a number")
        ruleset = parse_ruleset(doc["ruleset"])
        return LoadedSnapshot(ruleset=ruleset, etag=etag, saved_at=float(saved_at))

    # -- writing -----------------------------------------------------------------------------
    def save(self, ruleset: Ruleset, etag: str | None = None) -> bool:
        """Write ``ruleset`` atomically; False if skipped because the file holds a newer one.

        Raises OSError when the directory is not writable; the provider logs it and carries on
        (serving flags matters more than caching them).
        """
        body = {
            "lkg_format": LKG_FORMAT,
            "etag": etag or ruleset.etag,
            "saved_at": time.time(),
            "environment": ruleset.environment,
            "version": ruleset.version,
            "ruleset": dict(ruleset.raw),
        }
        data = json.dumps(body, separators=(",", ":"), default=_json_default).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, self._process_lock():
            current = self._peek_version()
            if (
                current is not None
                and current[0] == ruleset.environment
                and current[1] > ruleset.version
            ):
                return False
            self._atomic_write(data)
        return True

    def _peek_version(self) -> tuple[str, int] | None:
        try:
            doc = json.loads(self.path.read_bytes())
            env, version = doc["environment"], doc["version"]
        except Exception:
            return None
        if isinstance(env, str) and isinstance(version, int):
            return env, version
        return None

    @contextlib.contextmanager
    def _process_lock(self) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            yield
            return
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _atomic_write(self, data: bytes) -> None:
        tmp = self.path.with_name(
            f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}.tmp"
        )
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        # Makes the rename itself durable; not possible (or needed) on every platform.
        with contextlib.suppress(OSError, AttributeError):
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    if hasattr(value, "items"):
        return dict(value.items())
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
