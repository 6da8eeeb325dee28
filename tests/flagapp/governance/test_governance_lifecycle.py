"""Lifecycle rules end to end: owner, expiry horizon, key pattern, archive, key tombstones.

The rules are enforced by the services (so admin and API agree); these tests pin the
behaviour the governance docs promise, through the public write path and flagapp.evaluate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings
from django.utils import timezone

from flagapp import services
from flagapp.evaluation import evaluate
from flagapp.exceptions import FlagValidationError, KeyReuseError
from flagapp.models import Environment, Flag
from flagapp.testutils import reset_flag_cache


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    reset_flag_cache()
    yield
    reset_flag_cache()


def _create(owner: Any, key: str = "checkout.new-flow", **kw: Any) -> Flag:
    kw.setdefault("expires_on", timezone.localdate() + dt.timedelta(days=30))
    return services.create_flag(key=key, name=key, owner=owner, actor=None, reason="t", **kw)


def test_owner__missing__refused(envs: dict[str, Environment]) -> None:
    with pytest.raises(FlagValidationError) as info:
        _create(None)
    assert "owner" in info.value.message_dict


def test_release_expiry__missing_or_beyond_horizon__refused_ops_flag_exempt(
    owner_group: Group, envs: dict[str, Environment]
) -> None:
    today = timezone.localdate()
    with pytest.raises(FlagValidationError) as info:
        _create(owner_group, expires_on=None)
    assert "expires_on" in info.value.message_dict
    with pytest.raises(FlagValidationError, match="within 180 days"):
        _create(owner_group, expires_on=today + dt.timedelta(days=181))
    with override_settings(FLAGAPP={"RELEASE_EXPIRY_MAX_DAYS": 400}):
        assert _create(owner_group, expires_on=today + dt.timedelta(days=399)).pk
    assert _create(owner_group, key="ops.cache.bypass", flag_type="ops", expires_on=None).pk


@pytest.mark.parametrize("key", ["Checkout.NewFlow", "checkout", "a.b.c.d.e", "checkout..x"])
def test_key_pattern__default__team_domain_purpose_only(
    owner_group: Group, envs: dict[str, Environment], key: str
) -> None:
    with pytest.raises(FlagValidationError, match="flag key pattern"):
        _create(owner_group, key=key)


def test_key_pattern__configured__followed(
    owner_group: Group, envs: dict[str, Environment]
) -> None:
    with override_settings(FLAGAPP={"FLAG_KEY_PATTERN": r"^FEAT-\d+$"}):
        assert _create(owner_group, key="FEAT-42").key == "FEAT-42"
        with pytest.raises(FlagValidationError):
            _create(owner_group, key="checkout.new-flow")


def test_archived_flag__not_served_flag_not_found__history_kept(
    owner_group: Group,
    envs: dict[str, Environment],
    committed: Callable[[], AbstractContextManager[Any]],
) -> None:
    prod = envs["production"]
    with committed():
        flag = _create(owner_group)
        services.update_flag_state(
            flag, prod, actor=None, reason="on", enabled=True, fallthrough={"variant": "on"}
        )
    assert (
        evaluate("checkout.new-flow", False, {"targetingKey": "u1"}, environment="production").value
        is True
    )
    with committed():
        services.archive_flag(flag, actor=None, reason="done, code removed")
    reset_flag_cache()
    details = evaluate("checkout.new-flow", False, {"targetingKey": "u1"}, environment="production")
    assert (details.value, details.error_code) == (False, "FLAG_NOT_FOUND")
    reasons = [h.history_change_reason for h in Flag.history.filter(key="checkout.new-flow")]
    assert "done, code removed" in reasons and len(reasons) >= 2


def test_deleted_key__reused__refused_naming_the_deletion_date(
    owner_group: Group, envs: dict[str, Environment]
) -> None:
    flag = _create(owner_group)
    services.archive_flag(flag, actor=None, reason="retire")
    services.delete_flag(Flag.objects.get(pk=flag.pk), actor=None, reason="gone")
    today = timezone.now().strftime("%Y-%m-%d")
    with pytest.raises(KeyReuseError) as info:
        _create(owner_group)
    message = " ".join(info.value.message_dict["key"])
    assert "checkout.new-flow" in message and today in message and "never reused" in message
