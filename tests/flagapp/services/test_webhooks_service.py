"""Webhook endpoints through their services (issue 12 part 1: a service for every write):
validation naming the field, the secret returned once, permissions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from flagapp.exceptions import ChangeNotPermitted, FlagValidationError
from flagapp.models import WebhookEndpoint
from flagapp.services import webhooks

pytestmark = pytest.mark.django_db


def test_create_webhook__valid__stored_with_secret_returned_once(envs: dict[str, Any]) -> None:
    endpoint, secret = webhooks.create_webhook(
        name="deploy-bot",
        url="https://hooks.example.com/x",
        event_types=["flag.changed"],
        environments=["production"],
        actor=None,
    )
    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert secret.startswith("whsec_") and stored.secret == secret
    assert stored.event_types == ["flag.changed"]
    assert [e.key for e in stored.environments.all()] == ["production"]


def test_create_webhook__bad_fields__error_names_each_field(envs: dict[str, Any]) -> None:
    with pytest.raises(FlagValidationError) as info:
        webhooks.create_webhook(
            name=" ",
            url="ftp://x",
            kind="fax",
            event_types=["flag.exploded"],
            environments=["nowhere"],
            actor=None,
        )
    fields = info.value.message_dict
    assert set(fields) == {"name", "url", "kind", "event_types", "environments"}
    assert "flag.exploded" in fields["event_types"][0]
    assert not WebhookEndpoint.objects.exists()


def test_create_webhook__duplicate_name__error_on_name(envs: dict[str, Any]) -> None:
    webhooks.create_webhook(name="a", url="https://h.example.com/", actor=None)
    with pytest.raises(FlagValidationError) as info:
        webhooks.create_webhook(name="a", url="https://h.example.com/", actor=None)
    assert "name" in info.value.message_dict


def test_update_webhook__change_url__secret_kept(envs: dict[str, Any]) -> None:
    endpoint, secret = webhooks.create_webhook(name="a", url="https://h.example.com/", actor=None)
    webhooks.update_webhook(endpoint, url="https://other.example.com/", active=False, actor=None)
    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert (stored.url, stored.active, stored.secret) == (
        "https://other.example.com/",
        False,
        secret,
    )


def test_rotate_webhook_secret__new_secret_returned_and_stored(envs: dict[str, Any]) -> None:
    endpoint, old = webhooks.create_webhook(name="a", url="https://h.example.com/", actor=None)
    _, new = webhooks.rotate_webhook_secret(endpoint, actor=None)
    assert new != old and WebhookEndpoint.objects.get(pk=endpoint.pk).secret == new


def test_create_webhook__user_without_permission__refused(envs: dict[str, Any]) -> None:
    user = User.objects.create_user("nobody", password="x")
    with pytest.raises(ChangeNotPermitted):
        webhooks.create_webhook(name="a", url="https://h.example.com/", actor=user)
