"""SDK key services: create (the token is returned once) and revoke (with a reason).

The one writer of :class:`~flagapp.models.SdkKey` rows apart from the coarse
``last_used_at`` touch of :mod:`flagapp.sdk.keys` (statistics, not configuration). The admin
page (:mod:`flagapp.admin.sdk_keys`), the REST API (``/api/v1/sdk-keys/``) and
``manage.py flagapp_sdk_key`` all end here. A key of a protected environment reads its
configuration, so creating or revoking one needs ``flagapp.change_protected_environment``
too.

The token is built and hashed here and handed back to the caller exactly once: it is
never stored (only its sha256), never logged, never put in a message or the history.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from flagapp.exceptions import FlagValidationError
from flagapp.models import Environment, SdkKey

from ._base import check_permission, clean_reason, history_user

if TYPE_CHECKING:
    from flagapp.policy import Actor

__all__ = ["create_sdk_key", "revoke_sdk_key"]

logger = logging.getLogger("flagapp.sdk")

_NAME_MAX = SdkKey._meta.get_field("name").max_length or 100


def _environment(value: Any) -> Environment:
    if isinstance(value, Environment):
        return value
    if isinstance(value, str) and value:
        env = Environment.objects.filter(key=value).first()
        if env is not None:
            return env
        raise FlagValidationError({"environment": [f"no environment {value!r}"]})
    raise FlagValidationError({"environment": ["an environment is required"]})


def create_sdk_key(
    environment: Environment | str,
    *,
    name: str = "",
    scope: str = "server",
    actor: Actor,
    reason: str,
) -> tuple[SdkKey, str]:
    """Create a key for ``environment`` (an Environment or its key); return it and the token.

    ``scope`` is ``"server"`` (every SDK endpoint) or ``"client"`` (OFREP only; for browsers
    and apps, where the token is public). The token is returned once and never stored: show
    it to the person and forget it.
    """
    from flagapp.sdk.keys import SCOPES, new_token

    reason = clean_reason(reason)
    check_permission(actor, "flagapp.add_sdkkey")
    env = _environment(environment)
    if env.protected:
        check_permission(actor, "flagapp.change_protected_environment")
    if not isinstance(name, str):
        raise FlagValidationError({"name": ["expected text"]})
    name = name.strip()
    if len(name) > _NAME_MAX:
        raise FlagValidationError({"name": [f"at most {_NAME_MAX} characters"]})
    if scope not in SCOPES:
        raise FlagValidationError({"scope": [f"one of {', '.join(SCOPES)}, not {scope!r}"]})
    with transaction.atomic():
        while True:
            public_id, token, digest = new_token(env.key)
            if not SdkKey.objects.filter(public_id=public_id).exists():
                break
        key = SdkKey.objects.create(
            environment=env,
            name=name,
            public_id=public_id,
            secret_hash=digest,
            created_by=history_user(actor),
            created_reason=reason,
            scope=scope,
        )
    logger.info("created %s SDK key %s for environment %s", scope, public_id, env.key)
    return key, token


def revoke_sdk_key(key: SdkKey | int | str, *, actor: Actor, reason: str) -> SdkKey:
    """Revoke ``key`` (an SdkKey, its pk, or its public id) with a reason. Idempotent: a
    revoked key keeps its first revocation (who, when, why).

    Takes effect at once in this process, in others through the notifier (Redis) or at
    the latest after ``SDK_KEY_CACHE_SECONDS``.
    """
    from flagapp.sdk.keys import announce_revocation

    reason = clean_reason(reason)
    check_permission(actor, "flagapp.change_sdkkey")
    if isinstance(key, SdkKey):
        pk: Any = key.pk
        lookup: dict[str, Any] = {"pk": pk}
    elif isinstance(key, int) and not isinstance(key, bool):
        lookup = {"pk": key}
    elif isinstance(key, str) and key:
        lookup = {"public_id": key}
    else:
        raise FlagValidationError({"key": ["an SDK key (its public id) is required"]})
    with transaction.atomic():
        obj = SdkKey.objects.select_for_update().select_related("environment").filter(**lookup)
        row = obj.first()
        if row is None:
            raise FlagValidationError({"key": ["no such SDK key"]})
        if row.environment.protected:
            check_permission(actor, "flagapp.change_protected_environment")
        if row.revoked_at is None:
            row.revoked_at = timezone.now()
            row.revoked_by = history_user(actor)
            row.revoke_reason = reason
            row.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
            logger.info(
                "revoked SDK key %s by %s", row.public_id, getattr(actor, "username", None) or actor
            )
    announce_revocation(row.public_id)
    if isinstance(key, SdkKey):
        key.revoked_at, key.revoked_by, key.revoke_reason = (
            row.revoked_at,
            row.revoked_by,
            row.revoke_reason,
        )
    return row
