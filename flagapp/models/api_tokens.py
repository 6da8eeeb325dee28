"""Management-API tokens: per-user credentials for ``/api/v1/``, stored hashed.

Why not DRF's ``authtoken``: it stores the token itself, so anyone who can read the
database (a backup, a read replica, the admin's token list) can act as every API user.
Like SDK keys, only the sha256 of the token is stored (it is 190 random bits: a slow
password hash buys nothing) and the token is shown once, at creation. The non-secret
``prefix`` inside the token finds the row.
"""

from __future__ import annotations

from django.conf import settings as django_settings
from django.db import models

__all__ = ["ApiToken"]


class ApiToken(models.Model):
    """One API token of one user. Revoking sets ``revoked_at``; rows are never reused."""

    user = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="flagapp_api_tokens",
    )
    name = models.CharField(max_length=100, blank=True, default="")
    #: The non-secret identifier embedded in the token (``fapi_<prefix><secret>``).
    prefix = models.CharField(max_length=16, unique=True)
    #: sha256 hex digest of the whole token.
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    #: Updated coarsely (at most once a minute per token).
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user_id", "-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        state = " (revoked)" if self.revoked_at else ""
        return f"{self.name or self.prefix} [{self.prefix}]{state}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
