"""Webhook endpoint services: create, update, rotate the secret, delete.

The endpoint's signing secret is generated here and returned once by :func:`create_webhook`
and :func:`rotate_webhook_secret` (the admin shows it on a page of its own, never again). It
is stored in clear because signing needs it (HMAC, not a hash check); it is never logged and
the model has no history table (``flagapp.models.notifications``) -- which is also why these
services take no ``reason``: there is no history to record it in. ``actor`` needs the model
permissions (``flagapp.add_webhookendpoint``, ...); None is the system.

Validation names the field: ``name`` (required, unique, at most 100 characters), ``kind``
(``webhook`` or ``slack``), ``url`` (http or https with a host), ``event_types`` (known event
types), ``environments`` (existing environments, by key or instance), ``active``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction

from flagapp.exceptions import FlagValidationError
from flagapp.models import Environment, WebhookEndpoint, new_webhook_secret

from ._base import UNSET, check_permission

if TYPE_CHECKING:
    from flagapp.policy import Actor

__all__ = [
    "create_webhook",
    "delete_webhook",
    "rotate_webhook_secret",
    "update_webhook",
    "url_problem",
]

_KINDS = {kind for kind, _ in WebhookEndpoint.KIND_CHOICES}


def _event_types() -> dict[str, str]:
    from flagapp.notifications.events import EVENT_TYPES

    return dict(EVENT_TYPES)


def _check_name(name: Any, errors: dict[str, list[str]], exclude_pk: int | None) -> str:
    if not isinstance(name, str) or not name.strip():
        errors.setdefault("name", []).append("a name is required")
        return ""
    text: str = name.strip()
    others = WebhookEndpoint.objects.filter(name=text)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    if len(text) > 100:
        errors.setdefault("name", []).append("at most 100 characters")
    elif others.exists():
        errors.setdefault("name", []).append(f"an endpoint named {text!r} already exists")
    return text


def url_problem(url: Any) -> str | None:
    """Why ``url`` cannot be an endpoint's URL, or None (the admin form checks it too, so
    the error shows with the form's own field errors)."""
    text = url.strip() if isinstance(url, str) else ""
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        return "an http:// or https:// URL with a host"
    if parts.scheme not in ("http", "https") or not host:
        return "an http:// or https:// URL with a host"
    if len(text) > 500:
        return "at most 500 characters"
    return None


def _check_url(url: Any, errors: dict[str, list[str]]) -> str:
    problem = url_problem(url)
    if problem:
        errors.setdefault("url", []).append(problem)
    return url.strip() if isinstance(url, str) else ""


def _check_kind(kind: Any, errors: dict[str, list[str]]) -> str:
    if kind not in _KINDS:
        errors.setdefault("kind", []).append(f"{kind!r} is not one of {', '.join(sorted(_KINDS))}")
    return str(kind)


def _check_events(event_types: Any, errors: dict[str, list[str]]) -> list[str]:
    if event_types is None:
        return []
    if not isinstance(event_types, list | tuple) or not all(
        isinstance(e, str) for e in event_types
    ):
        errors.setdefault("event_types", []).append("expected a list of event types")
        return []
    known = _event_types()
    unknown = [e for e in event_types if e not in known]
    if unknown:
        errors.setdefault("event_types", []).append(
            f"unknown event type(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    return list(dict.fromkeys(event_types))


def _check_environments(environments: Any, errors: dict[str, list[str]]) -> list[Environment]:
    if environments is None:
        return []
    if isinstance(environments, str) or not isinstance(environments, Iterable):
        errors.setdefault("environments", []).append("expected a list of environments")
        return []
    out: list[Environment] = []
    missing: list[str] = []
    for env in environments:
        if isinstance(env, Environment):
            out.append(env)
            continue
        found = Environment.objects.filter(key=str(env)).first()
        if found is None:
            missing.append(str(env))
        else:
            out.append(found)
    if missing:
        errors.setdefault("environments", []).append(f"no environment(s): {', '.join(missing)}")
    return out


def create_webhook(
    *,
    name: str,
    url: str,
    actor: Actor,
    kind: str = WebhookEndpoint.KIND_WEBHOOK,
    event_types: Sequence[str] | None = None,
    environments: Iterable[Environment | str] | None = None,
    active: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; returns it and its signing secret (show it once)."""
    check_permission(actor, "flagapp.add_webhookendpoint")
    errors: dict[str, list[str]] = {}
    clean_name = _check_name(name, errors, None)
    clean_kind = _check_kind(kind, errors)
    clean_url = _check_url(url, errors)
    events = _check_events(event_types, errors)
    envs = _check_environments(environments, errors)
    if not isinstance(active, bool):
        errors.setdefault("active", []).append("expected true or false")
    if errors:
        raise FlagValidationError(errors)
    secret = new_webhook_secret()
    try:
        with transaction.atomic():
            endpoint = WebhookEndpoint.objects.create(
                name=clean_name,
                kind=clean_kind,
                url=clean_url,
                event_types=events,
                active=active,
                secret=secret,
            )
            endpoint.environments.set(envs)
    except IntegrityError:
        raise FlagValidationError(
            {"name": [f"an endpoint named {clean_name!r} already exists"]}
        ) from None
    return endpoint, secret


def update_webhook(
    endpoint: WebhookEndpoint,
    *,
    actor: Actor,
    name: Any = UNSET,
    url: Any = UNSET,
    kind: Any = UNSET,
    event_types: Any = UNSET,
    environments: Any = UNSET,
    active: Any = UNSET,
) -> WebhookEndpoint:
    """Change an endpoint; omitted arguments keep the stored value. The secret never
    changes here (:func:`rotate_webhook_secret`)."""
    check_permission(actor, "flagapp.change_webhookendpoint")
    errors: dict[str, list[str]] = {}
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = _check_name(name, errors, endpoint.pk)
    if kind is not UNSET:
        changes["kind"] = _check_kind(kind, errors)
    if url is not UNSET:
        changes["url"] = _check_url(url, errors)
    if event_types is not UNSET:
        changes["event_types"] = _check_events(event_types, errors)
    if active is not UNSET:
        if not isinstance(active, bool):
            errors.setdefault("active", []).append("expected true or false")
        changes["active"] = active
    envs = _check_environments(environments, errors) if environments is not UNSET else None
    if errors:
        raise FlagValidationError(errors)
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        for field, value in changes.items():
            setattr(locked, field, value)
        if changes:
            locked.save()
        if envs is not None:
            locked.environments.set(envs)
    for field, value in changes.items():
        setattr(endpoint, field, value)
    return locked


def rotate_webhook_secret(
    endpoint: WebhookEndpoint, *, actor: Actor
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret (the old one stops verifying at once); returned once."""
    check_permission(actor, "flagapp.change_webhookendpoint")
    secret = new_webhook_secret()
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.secret = secret
        locked.save(update_fields=["secret", "updated_at"])
    endpoint.secret = secret
    return locked, secret


def delete_webhook(endpoint: WebhookEndpoint, *, actor: Actor) -> None:
    """Delete an endpoint and its delivery log."""
    check_permission(actor, "flagapp.delete_webhookendpoint")
    endpoint.delete()
