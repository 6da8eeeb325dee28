"""Request context: turn a Django request (or anything else a caller passes) into the plain
mapping the engine reads. Also importable as ``flagapp.context``.

Why a separate module: the request → context step is the one part of evaluation a project
most often wants to change (a tenant id, a plan read from the profile, ...). It is a single
callable, ``FLAGAPP["CONTEXT_BUILDER"]`` (a dotted path or a callable taking the request and
returning a mapping); the default is :func:`default_context`.

The result is cached on the request (``request._flagapp_context``) so the ten flags a page
checks build it once. The default builder makes no database query unless the current
ruleset actually targets on ``groups`` (then one query per request, for the user's group
names): a page that checks flags must not pay for attributes nobody reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from django.utils.module_loading import import_string

from flagapp.conf import settings as flagapp_settings

from .cache import attribute_in_use

__all__ = [
    "CONTEXT_ATTR",
    "ContextBuilder",
    "client_ip",
    "context_for_request",
    "default_context",
    "get_context_builder",
    "to_context",
]

#: The attribute the built context is cached under on the request object.
CONTEXT_ATTR = "_flagapp_context"

ContextBuilder = Callable[[Any], Mapping[str, Any]]

_builder_cache: dict[object, ContextBuilder] = {}


def client_ip(request: Any) -> str | None:
    """The client address: ``FLAGAPP["CLIENT_IP_HEADER"]`` (first hop) if set, else REMOTE_ADDR.

    A forwarding header is only trustworthy behind a proxy that sets it, so it is opt-in.
    """
    meta = getattr(request, "META", None) or {}
    header = getattr(flagapp_settings, "CLIENT_IP_HEADER", None)
    if header:
        forwarded = meta.get(header)
        if forwarded:
            return str(forwarded).split(",")[0].strip() or None
    addr = meta.get("REMOTE_ADDR")
    return str(addr) if addr else None


def default_context(request: Any) -> dict[str, Any]:
    """The default request → context mapping.

    ``targetingKey`` is the user's primary key (as a string) for a signed-in user, else the
    session key when the request has a session that was saved, else absent (percentage
    rollouts then serve the caller's default with TARGETING_KEY_MISSING, rather than bucket
    every anonymous visitor together). Attributes: ``authenticated``, ``is_staff``,
    ``is_superuser``, ``username``, ``email``, ``email_domain``, ``ip``, and ``groups``
    (group names) when the active ruleset targets on them.
    """
    ctx: dict[str, Any] = {}
    user = getattr(request, "user", None)
    authenticated = bool(user is not None and getattr(user, "is_authenticated", False))
    ctx["authenticated"] = authenticated
    if authenticated:
        assert user is not None
        ctx["targetingKey"] = str(user.pk)
        ctx["is_staff"] = bool(getattr(user, "is_staff", False))
        ctx["is_superuser"] = bool(getattr(user, "is_superuser", False))
        username = user.get_username() if hasattr(user, "get_username") else None
        if username:
            ctx["username"] = username
        email = getattr(user, "email", "") or ""
        if email:
            ctx["email"] = email
            if "@" in email:
                ctx["email_domain"] = email.rsplit("@", 1)[1].lower()
        if _groups_in_use() and hasattr(user, "groups"):
            ctx["groups"] = sorted(user.groups.values_list("name", flat=True))
    else:
        ctx["is_staff"] = False
        ctx["is_superuser"] = False
        session = getattr(request, "session", None)
        session_key = getattr(session, "session_key", None) if session is not None else None
        if session_key:
            ctx["targetingKey"] = session_key
    ip = client_ip(request)
    if ip:
        ctx["ip"] = ip
    return ctx


def _groups_in_use() -> bool:
    return attribute_in_use("groups")


def get_context_builder() -> ContextBuilder:
    """The configured builder (``FLAGAPP["CONTEXT_BUILDER"]``), imported once per setting."""
    configured = getattr(flagapp_settings, "CONTEXT_BUILDER", None)
    if configured is None:
        return default_context
    if callable(configured):
        return configured  # type: ignore[no-any-return,unused-ignore]
    builder = _builder_cache.get(configured)
    if builder is None:
        builder = import_string(str(configured))
        _builder_cache[configured] = builder
    return builder


def context_for_request(request: Any) -> Mapping[str, Any]:
    """The request's context, built once per request and cached on it."""
    try:
        return getattr(request, CONTEXT_ATTR)  # type: ignore[no-any-return,unused-ignore]
    except AttributeError:
        pass
    ctx = get_context_builder()(request)
    with contextlib.suppress(AttributeError):  # an object with __slots__: don't cache
        setattr(request, CONTEXT_ATTR, ctx)
    return ctx


_MISSING: Any = object()


def to_context(request_or_context: Any) -> Mapping[str, Any] | None:
    """A mapping for the engine from what ``evaluate`` was given, or ``None`` when it cannot
    be one: ``None`` (empty), a dict or mapping, a request (:func:`context_for_request`), or
    an OpenFeature ``EvaluationContext`` (``targeting_key`` + ``attributes``)."""
    if request_or_context is None:
        return {}
    if isinstance(request_or_context, dict):
        return request_or_context
    if hasattr(request_or_context, "META"):  # HttpRequest, DRF Request, test doubles
        return context_for_request(request_or_context)
    if isinstance(request_or_context, Mapping):
        return request_or_context
    targeting_key = getattr(request_or_context, "targeting_key", _MISSING)
    attributes = getattr(request_or_context, "attributes", _MISSING)
    if targeting_key is not _MISSING and isinstance(attributes, Mapping):
        ctx = dict(attributes)  # an openfeature EvaluationContext
        if targeting_key is not None:
            ctx["targetingKey"] = targeting_key
        return ctx
    return None
