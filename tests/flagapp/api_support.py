"""Fixtures and helpers of the management-API tests (imported by tests/flagapp/api/test_api_*.py).

Clients authenticate with real flagapp API tokens (``Authorization: Token fapi_...``) so the
authentication classes are exercised, not bypassed with ``force_authenticate``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from rest_framework.test import APIClient

__all__ = [
    "ALL_VIEW",
    "EDITOR",
    "admin_client",
    "api_flag",
    "client_for",
    "make_user",
    "release_expiry",
    "write_headers",
]

#: view permissions of everything the API shows
ALL_VIEW = [
    "view_environment",
    "view_flag",
    "view_variant",
    "view_flagstate",
    "view_targetingrule",
    "view_segment",
    "view_sdkkey",
]
#: an editor of unprotected environments
EDITOR = [
    *ALL_VIEW,
    "add_flag",
    "change_flag",
    "delete_flag",
    "change_flagstate",
    "add_segment",
    "change_segment",
    "delete_segment",
    "add_environment",
    "change_environment",
    "add_sdkkey",
    "change_sdkkey",
]


def release_expiry() -> str:
    return (dt.date.today() + dt.timedelta(days=30)).isoformat()


def write_headers(version: int | None = None, reason: str = "api test") -> dict[str, str]:
    headers = {"HTTP_X_CHANGE_REASON": reason}
    if version is not None:
        headers["HTTP_IF_MATCH"] = f'"{version}"'
    return headers


def _client(user: User) -> APIClient:
    client = APIClient()
    from flagapp.api.tokens import create_api_token

    _, token = create_api_token(user, "tests")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    client.user = user  # type: ignore[attr-defined]
    return client


@pytest.fixture
def make_user(db: Any) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(*codenames: str, username: str | None = None) -> User:
        user = User.objects.create_user(username or f"user{next(counter)}", password="x")
        if codenames:
            user.user_permissions.set(
                Permission.objects.filter(content_type__app_label="flagapp", codename__in=codenames)
            )
        return User.objects.get(pk=user.pk)  # fresh permission cache

    return make


@pytest.fixture
def client_for() -> Callable[[User], APIClient]:
    return _client


@pytest.fixture
def admin_client(db: Any) -> APIClient:
    admin = User.objects.create_superuser("admin", "admin@example.com", "x")
    return _client(admin)


@pytest.fixture
def api_flag(envs: dict[str, Any], owner_group: Group) -> Callable[..., Any]:
    """Create a flag through the services (as the system)."""
    from flagapp import services

    def make(key: str = "checkout.new-flow", **kwargs: Any) -> Any:
        kwargs.setdefault("name", key)
        kwargs.setdefault("owner", owner_group)
        kwargs.setdefault("expires_on", dt.date.today() + dt.timedelta(days=30))
        return services.create_flag(key=key, actor=None, reason="setup", **kwargs)

    return make
