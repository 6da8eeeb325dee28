"""The ``Flagapp-Signature`` header: HMAC-SHA256 over ``timestamp + "." + body``.

Why the timestamp is signed with the body: a receiver that checks the signature and that
the timestamp is recent (five minutes is the advice) cannot be fed a recorded request
again later; each retry is signed afresh, so a late retry is still accepted. The header is
``t=<unix seconds>,v1=<hex digest>``; several ``v1=`` values may appear while a secret is
being rotated (any one matching is enough). :func:`verify` is the receiver's side, the same
code as the snippet in docs/observability.md.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from flagapp.exceptions import SignatureError

__all__ = ["HEADER", "SignatureError", "sign", "signature_header", "verify"]

#: The HTTP header carrying the signature.
HEADER = "Flagapp-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``b"<timestamp>." + body`` keyed with ``secret`` (UTF-8)."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body`` signed now (or at ``timestamp``)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={sign(secret, t, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> int:
    """Check a ``Flagapp-Signature`` header against the raw request body.

    Returns the signed timestamp; raises :class:`SignatureError` when the header is
    malformed, no ``v1`` matches (compared in constant time) or the timestamp is further
    than ``tolerance`` seconds from ``now``.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(f"malformed {HEADER} header")
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("signature does not match")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance (replayed or clock skew)")
    return timestamp
