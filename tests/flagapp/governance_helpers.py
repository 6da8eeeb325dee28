"""Fixtures for the governance tests: users, owner groups, environments and flags.

Flags are built with the ORM here because these tests exercise governance code (reminders,
reports, lint) that reads rows, not the write path; change-request tests go through the
services.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone

from flagapp.models import Environment, Flag, FlagState, Variant
from flagapp.policy import GrantedApproval


def user(
    username: str,
    *,
    email: str | None = None,
    groups: tuple[Group, ...] = (),
    perms: tuple[str, ...] = (),
    staff: bool = True,
    active: bool = True,
) -> User:
    u = User.objects.create_user(
        username,
        email=f"{username}@example.com" if email is None else email,
        password="pw-" + username,
        is_staff=staff,
        is_active=active,
    )
    for g in groups:
        u.groups.add(g)
    for perm in perms:
        app_label, codename = perm.split(".")
        u.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return u


def env(key: str = "production", *, protected: bool = False) -> Environment:
    return Environment.objects.create(key=key, name=key.title(), protected=protected)


def flag(
    key: str,
    owner: Group,
    *,
    flag_type: str = "release",
    expires_on: dt.date | None = None,
    created_days_ago: int = 0,
    **kw: Any,
) -> Flag:
    f = Flag.objects.create(
        key=key, name=key, owner=owner, flag_type=flag_type, expires_on=expires_on, **kw
    )
    Variant.objects.create(flag=f, key="on", value=True, order=0)
    Variant.objects.create(flag=f, key="off", value=False, order=1)
    if created_days_ago:
        Flag.objects.filter(pk=f.pk).update(
            created_at=timezone.now() - dt.timedelta(days=created_days_ago)
        )
        f.refresh_from_db()
    return f


def state(
    f: Flag,
    environment: Environment,
    *,
    enabled: bool = True,
    fallthrough: dict[str, Any] | None = None,
    days_ago: int = 0,
) -> FlagState:
    s = FlagState.objects.create(
        flag=f,
        environment=environment,
        enabled=enabled,
        fallthrough={"variant": "off"} if fallthrough is None else fallthrough,
    )
    if days_ago:
        FlagState.objects.filter(pk=s.pk).update(
            updated_at=timezone.now() - dt.timedelta(days=days_ago)
        )
        s.refresh_from_db()
    return s


def production_baseline(flag: Flag, env: Environment) -> Flag:
    """Serve ``off`` to everyone in ``env`` before a change-request test proposes a change.

    Written through the services with the dry-run approval token, the same way an approved
    change request writes, so the baseline has a published snapshot and history.
    """
    from flagapp import services

    services.update_flag_state(
        flag,
        env,
        actor=None,
        reason="baseline",
        enabled=True,
        fallthrough={"variant": "off"},
        change_request=GrantedApproval(),
    )
    return flag
