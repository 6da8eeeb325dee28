"""Management-API tokens: creation (shown once), revocation, and the lookup behind
:class:`flagapp.api.base.ApiTokenAuthentication`.

A token looks like ``fapi_Ab3dE6gH<32 more base62 chars>``: a fixed prefix (secret
scanners can find leaked tokens, and it differs from SDK keys' ``fa_<env>_``), 8 characters
of public prefix, 32 of secret. Only the sha256 of the whole token is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import string
from typing import Any

from django.utils import timezone

from flagapp.models import ApiToken

__all__ = [
    "TOKEN_PREFIX",
    "authenticate",
    "create_api_token",
    "hash_token",
    "prefix_of",
    "revoke_api_token",
]

logger = logging.getLogger("flagapp.api")

TOKEN_PREFIX = "fapi_"
_ALPHABET = string.ascii_letters + string.digits
_PREFIX_LEN = 8
_SECRET_LEN = 32
#: last_used_at is written at most this often per token (a write per request would turn
#: every API read into a write).
LAST_USED_INTERVAL = dt.timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def prefix_of(token: str) -> str | None:
    """The public prefix inside ``token``, or None when it is not shaped like one of ours."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    tail = token[len(TOKEN_PREFIX) :]
    if len(tail) != _PREFIX_LEN + _SECRET_LEN or not tail.isalnum() or not tail.isascii():
        return None
    return tail[:_PREFIX_LEN]


def create_api_token(user: Any, name: str = "") -> tuple[ApiToken, str]:
    """Create a token for ``user``; return the row and the token (shown once, never stored)."""
    while True:
        prefix = _random(_PREFIX_LEN)
        if not ApiToken.objects.filter(prefix=prefix).exists():
            break
    token = f"{TOKEN_PREFIX}{prefix}{_random(_SECRET_LEN)}"
    row = ApiToken.objects.create(
        user=user, name=name, prefix=prefix, secret_hash=hash_token(token)
    )
    logger.info("created API token %s for user %s", prefix, user.get_username())
    return row, token


def revoke_api_token(token_or_prefix: Any) -> ApiToken:
    """Revoke a token (an ApiToken, its prefix or the whole token). Idempotent.

    Raises ``ApiToken.DoesNotExist`` for an unknown one."""
    if isinstance(token_or_prefix, ApiToken):
        row = token_or_prefix
    else:
        text = str(token_or_prefix)
        row = ApiToken.objects.get(prefix=prefix_of(text) or text)
    if row.revoked_at is None:
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])
        logger.info("revoked API token %s", row.prefix)
    return row


def authenticate(token: str) -> ApiToken | None:
    """The active token row (with its user) that ``token`` proves, or None.

    Checked on every request (no cache): revoking takes effect at once."""
    prefix = prefix_of(token)
    if prefix is None:
        return None
    row = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if row is None or not hmac.compare_digest(row.secret_hash, hash_token(token)):
        return None
    if row.revoked_at is not None:
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_INTERVAL:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row
