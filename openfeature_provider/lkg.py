"""The last-known-good file: the newest accepted snapshot, kept on disk.

Why: a service that restarts while the flag server is down must still answer with the rules
it last saw, not with every caller's default. So each accepted snapshot is written to
``cache_path`` and read back when the server cannot be reached at start-up.

File format (JSON, one object)::

    {"lkg_format": 1, "etag": "sha256:...", "saved_at": 1732380000.5,
     "environment": "production", "version": 42,
     "server": "https://flags.example.com", "key_environment": "production",
     "key_fingerprint": "3f1c...", "ruleset": {...format v1 document...}}

Rules (issue 11 finding 6):

- **The server's snapshot always wins.** Every accepted snapshot is written, whatever its
  version: versions restart when a database is restored or an environment re-created, and a
  file must never pin the provider to a number the server has left behind.
- **The file is bound to the server and the key's environment.** It is served only to a
  provider talking to the same base URL, and only if the SDK key vouches for the file's
  environment: a key of the form ``fa_<environment>_<40 chars>`` (what flagapp issues) must
  name the ruleset's environment, so a rotated key of the same environment still uses the
  file and a staging file is never served to a production key; any other key must be the very
  key that wrote the file (compared by a truncated sha256 fingerprint; the key is not stored).
- **A ``saved_at`` in the future counts as now**, so a clock that was ahead cannot keep an
  old file from going STALE.

Writes are atomic: a temporary file in the same directory (unique per process and thread),
``fsync``, ``os.replace`` onto the path, ``fsync`` of the directory. Several processes of one
service may share the path: readers only ever see a whole file, and the last writer wins.

A file that is missing, truncated, not JSON, of another format, whose ruleset fails
validation, or written for another server or environment is ignored with a warning: the
provider then behaves as if there were none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openfeature_provider.engine import Ruleset, parse_ruleset
from openfeature_provider.engine.document import flag_entry, ruleset_document, segment_entry
from openfeature_provider.engine.swap import dumps, freeze_wanted, loads

__all__ = ["LKG_FORMAT", "LastKnownGood", "LoadedSnapshot", "key_environment"]

LKG_FORMAT = 1
logger = logging.getLogger("flagapp.provider")

#: flagapp's SDK tokens: ``fa_<environment key>_`` + 8 characters of public id + 32 of secret.
_TOKEN = re.compile(r"fa_(?P<env>.+)_[0-9A-Za-z]{40}")


def key_environment(sdk_key: str) -> str | None:
    """The environment a flagapp SDK token names, or None for a key of another form."""
    match = _TOKEN.fullmatch(sdk_key.strip())
    return match.group("env") if match else None


def _fingerprint(sdk_key: str) -> str:
    return hashlib.sha256(sdk_key.strip().encode()).hexdigest()[:16]


class _Mismatch(ValueError):
    """The file is valid but not for this server/key."""


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
    """Reads and atomically writes one last-known-good file.

    ``server`` (the flag server's base URL) and ``sdk_key`` (a key or a callable returning the
    current one) are the identity the file is bound to; both None for a provider fed by its
    own source (no server, no key), whose files are only served to such providers.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        server: str | None = None,
        sdk_key: str | Callable[[], str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.server = server.rstrip("/") if server else None
        self._sdk_key = sdk_key
        self._thread_lock = threading.Lock()

    def _key(self) -> str | None:
        key = self._sdk_key
        if key is None or isinstance(key, str):
            return key
        return key()

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
        except _Mismatch as exc:
            logger.warning("flagapp: not using last-known-good file %s: %s", self.path, exc)
            return None
        except Exception as exc:  # any defect means "no usable file"
            logger.warning(
                "flagapp: ignoring last-known-good file %s (%s: %s)",
                self.path,
                type(exc).__name__,
                exc,
            )
            return None

    def _decode(self, data: bytes) -> LoadedSnapshot:
        doc = loads(data)
        if not isinstance(doc, dict) or doc.get("lkg_format") != LKG_FORMAT:
            raise ValueError(f"not a flagapp last-known-good file (lkg_format {LKG_FORMAT})")
        etag = doc.get("etag")
        saved_at = doc.get("saved_at")
        if not isinstance(etag, str) or isinstance(saved_at, bool):
            raise ValueError("missing etag or saved_at")
        if not isinstance(saved_at, int | float):
            raise ValueError("saved_at is not a number")
        if doc.get("server") != self.server:
            raise _Mismatch(
                f"written for another server ({doc.get('server')!r}, this provider uses"
                f" {self.server!r})"
            )
        ruleset = parse_ruleset(doc["ruleset"], freeze=freeze_wanted(), keep_raw=False)
        key = self._key()
        if key is not None:
            env = key_environment(key)
            if env is not None and env != ruleset.environment:
                raise _Mismatch(
                    f"it holds environment {ruleset.environment!r}; the SDK key is for {env!r}"
                )
            if env is None and doc.get("key_fingerprint") != _fingerprint(key):
                raise _Mismatch("written with another SDK key")
        # a clock that was ahead must not keep the file fresh: the future counts as now
        return LoadedSnapshot(
            ruleset=ruleset, etag=etag, saved_at=min(float(saved_at), time.time())
        )

    # -- writing -----------------------------------------------------------------------------
    def save(self, ruleset: Ruleset, etag: str | None = None) -> bool:
        """Write ``ruleset`` atomically, whatever the file held (the server's snapshot wins).

        Returns True. Raises OSError when the directory is not writable; the provider logs it
        and carries on (serving flags matters more than caching them).
        """
        key = self._key()
        body = {
            "lkg_format": LKG_FORMAT,
            "etag": etag or ruleset.etag,
            "saved_at": time.time(),
            "environment": ruleset.environment,
            "version": ruleset.version,
            "server": self.server,
            "key_environment": key_environment(key) if key else None,
            "key_fingerprint": _fingerprint(key) if key else None,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock:
            self._atomic_write(_encode(body, ruleset))
        return True

    def _atomic_write(self, data: bytes | Iterable[bytes]) -> None:
        tmp = self.path.with_name(
            f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}.tmp"
        )
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                for chunk in [data] if isinstance(data, bytes) else data:
                    view = memoryview(chunk)
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


_CHUNK = 256 * 1024


def _encode(body: dict[str, Any], ruleset: Ruleset) -> Iterator[bytes]:
    """The file's JSON in chunks of about 256 KiB: ``body`` plus ``"ruleset"``, the document
    kept or — the provider keeps none — rebuilt flag by flag from the ruleset
    (``engine.document``). Flag by flag, so neither a whole document nor its whole text is
    ever held at once (at 10,000 flags those were tens of MB that the allocator kept after a
    swap), and no single C call encodes megabytes while evaluating threads wait for the GIL
    (engine/swap.py)."""
    encode = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode
    parts: list[str] = [encode(body)[:-1], ',"ruleset":']
    size = 0

    def flush() -> bytes:
        nonlocal size
        data = "".join(parts).encode()
        parts.clear()
        size = 0
        return data

    if ruleset.raw:
        parts.append(dumps(ruleset_document(ruleset), _json_default, levels=2))
    else:
        head = {
            "format": ruleset.format,
            "environment": ruleset.environment,
            "version": ruleset.version,
            "etag": ruleset.etag,
        }
        parts.append(encode(head)[:-1])
        sections: tuple[tuple[str, Iterator[tuple[str, dict[str, Any]]]], ...] = (
            ("flags", ((k, flag_entry(f)) for k, f in ruleset.flags.items())),
            ("segments", ((k, segment_entry(g)) for k, g in ruleset.segments.items())),
        )
        for name, entries in sections:
            parts.append(f',"{name}":{{')
            for i, (key, entry) in enumerate(entries):
                text = f"{',' if i else ''}{encode(key)}:{encode(entry)}"
                parts.append(text)
                size += len(text)
                if size >= _CHUNK:
                    yield flush()
            parts.append("}")
        parts.append("}")
    parts.append("}")
    yield flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    if hasattr(value, "items"):
        return dict(value.items())
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
