"""Every public exception of the provider package (the engine's are in engine/exceptions.py).

    FlagappProviderError             base of everything below
    ├── ConfigurationError           an invalid option (also a ValueError); names the field
    ├── FlagdExportError             interop.flagd: not exportable identically (a ValueError)
    ├── FlagdImportError             interop.flagd_import: flagd definitions with no exact
    │                                flagapp form (a ValueError)
    └── SourceError                  (below)

Errors raised by snapshot sources and reported to the provider.

A source never lets an exception escape its thread: it reports it to its listener with
``listener.on_error(exc, fatal=...)``. The provider decides what the OpenFeature world sees
from the *class* of the error, so the classes below are the whole vocabulary:

    SourceError                  anything a source reports
    ├── SourceUnavailable        transient: refused, timed out, 5xx, 429, stream dropped
    │   └── RateLimited          429 with the server's Retry-After
    ├── AuthenticationError      401/403: the SDK key is missing, unknown or revoked
    ├── InvalidSnapshot          the body is not JSON or fails ruleset validation (rejected whole)
    ├── ResponseTooLarge         the body is over ``max_response_bytes`` (not read further)
    └── UnexpectedResponse       any other status (404 from a wrong URL, 400, ...)

Transient errors lead to PROVIDER_STALE once the staleness window has passed; the others to
PROVIDER_ERROR with a message (and STALE too once the window has passed). A rejected key is
fatal (PROVIDER_FATAL, the source stops) only while the provider has no snapshot at all; with
one held it keeps serving it and the source keeps retrying with backoff.
The provider itself only ever lets OpenFeature errors out; these never reach a caller of the
OpenFeature client.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "FlagappProviderError",
    "FlagdExportError",
    "FlagdImportError",
    "InvalidSnapshot",
    "RateLimited",
    "ResponseTooLarge",
    "SourceError",
    "SourceUnavailable",
    "UnexpectedResponse",
]


class FlagappProviderError(Exception):
    """Base of every error this package defines."""


class FlagdExportError(FlagappProviderError, ValueError):
    """A construct flagd cannot evaluate identically; ``flag`` and ``path`` (JSON) locate it."""

    def __init__(self, flag: str | None, path: str, message: str) -> None:
        self.flag = flag
        self.path = path
        where = f"flag {flag!r} at {path}" if flag is not None else path
        super().__init__(f"{where}: {message}")


class FlagdImportError(FlagappProviderError, ValueError):
    """flagd definitions flagapp cannot evaluate identically; ``flag`` and ``path`` (JSON path
    in the flagd file) locate the construct."""

    def __init__(self, flag: str | None, path: str, message: str) -> None:
        self.flag = flag
        self.path = path
        where = f"flag {flag!r} at {path}" if flag is not None else path
        super().__init__(f"{where}: {message}")


class ConfigurationError(FlagappProviderError, ValueError):
    """An invalid provider option: ``field`` names it, the message says what is allowed."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class SourceError(FlagappProviderError):
    """A snapshot source could not deliver a usable snapshot.

    ``transient`` says whether retrying unchanged can succeed; ``fatal`` whether the source
    has given up (it stops its thread after reporting a fatal error).
    """

    transient: bool = False
    fatal: bool = False


class SourceUnavailable(SourceError):
    """The server could not be reached or answered with a server-side failure."""

    transient = True


class RateLimited(SourceUnavailable):
    """429 Too Many Requests; ``retry_after`` is the server's wish in seconds (or None)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthenticationError(SourceError):
    """401/403: the SDK key was rejected.

    Not fatal by itself: a key restored on the server, a rotation in progress (``sdk_key`` may
    be a callable returning the current key) or a proxy glitch heal on a later retry.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class InvalidSnapshot(SourceError):
    """The document is not JSON, not format v1, or fails validation; it is rejected whole."""


class ResponseTooLarge(SourceError):
    """The response body is over the client's ``max_response_bytes`` (decoded size).

    Reading stops at the cap, before anything is parsed: a bogus or hostile reply costs at most
    the cap in memory. Not transient from the client's side (the same server answer would be
    just as large), so it is reported as PROVIDER_ERROR; retries continue with backoff.
    """

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class UnexpectedResponse(SourceError):
    """A status code the protocol does not allow for this endpoint (e.g. 404 from a wrong URL)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
