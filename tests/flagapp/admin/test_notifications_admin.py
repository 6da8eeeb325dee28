"""The admin of webhook endpoints (secret shown once) and of the delivery log (replay)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client, override_settings
from django.urls import reverse

from flagapp import services
from flagapp.models import NotificationDelivery, WebhookEndpoint
from tests.flagapp.webhook_receiver import Receiver, running_receiver

Committed = Callable[[], AbstractContextManager[Any]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


def test_endpoint_admin__add__secret_shown_once_never_again_nor_in_log_entries(
    admin_client: Client, envs: dict[str, Any]
) -> None:
    response = admin_client.post(
        reverse("admin:flagapp_webhookendpoint_add"),
        {
            "name": "deploy-bot",
            "kind": "webhook",
            "url": "https://hooks.example.com/flagapp",
            "event_types": ["flag.changed", "rollout.rolled_back"],
            "environments": [envs["production"].pk],
            "active": "on",
        },
    )
    assert response.status_code == 200, response.content[:2000]
    endpoint = WebhookEndpoint.objects.get(name="deploy-bot")
    assert endpoint.secret.startswith("whsec_") and len(endpoint.secret) > 40
    assert endpoint.secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert endpoint.event_types == ["flag.changed", "rollout.rolled_back"]
    assert list(endpoint.environments.all()) == [envs["production"]]
    change = admin_client.get(reverse("admin:flagapp_webhookendpoint_change", args=[endpoint.pk]))
    listing = admin_client.get(reverse("admin:flagapp_webhookendpoint_changelist"))
    history = admin_client.get(reverse("admin:flagapp_webhookendpoint_history", args=[endpoint.pk]))
    for page in (change, listing, history):
        assert page.status_code == 200
        assert endpoint.secret not in page.content.decode()
    for entry in LogEntry.objects.all():
        assert endpoint.secret not in f"{entry.change_message} {entry.object_repr}"


def test_endpoint_admin__bad_url_and_unknown_event__field_errors(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:flagapp_webhookendpoint_add"),
        {"name": "x", "kind": "webhook", "url": "ftp://example.com/x", "event_types": ["nope"]},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"url", "event_types"}
    assert not WebhookEndpoint.objects.exists()


def test_endpoint_admin__rotate_secret__new_secret_shown_once(admin_client: Client) -> None:
    endpoint = WebhookEndpoint.objects.create(name="bot", url="https://example.com/h")
    old = endpoint.secret
    response = admin_client.post(
        reverse("admin:flagapp_webhookendpoint_changelist"),
        {"action": "rotate_secret", "_selected_action": [endpoint.pk]},
    )
    endpoint.refresh_from_db()
    assert endpoint.secret != old
    assert endpoint.secret in response.content.decode()


def test_delivery_admin__failed_delivery__listed_with_code_and_replayed_to_receiver(
    admin_client: Client,
    receiver: Receiver,
    make_flag: Callable[..., Any],
    envs: dict[str, Any],
    committed: Committed,
) -> None:
    flag = make_flag("checkout.new-flow")  # before the endpoint (outbox)
    WebhookEndpoint.objects.create(name="ci", url=receiver.url + "/hook")
    receiver.then("/hook", 500)
    with override_settings(FLAGAPP={"WEBHOOK_MAX_ATTEMPTS": 1}), committed():
        services.update_flag_state(flag, envs["production"], enabled=True, actor=None, reason="go")
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == "failed"
    listing = admin_client.get(reverse("admin:flagapp_notificationdelivery_changelist"))
    text = listing.content.decode()
    assert "flag.changed" in text and "failed" in text and "HTTP 500" in text
    page = admin_client.get(
        reverse("admin:flagapp_notificationdelivery_change", args=[delivery.pk])
    )
    assert page.status_code == 200
    assert "checkout.new-flow" in page.content.decode()  # the payload
    with committed():
        response = admin_client.post(
            reverse("admin:flagapp_notificationdelivery_changelist"),
            {"action": "replay_deliveries", "_selected_action": [delivery.pk]},
            follow=True,
        )
    assert "Queued 1 delivery again." in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_response_code) == ("succeeded", 200)
    assert [json.loads(r.body)["id"] for r in receiver.requests("/hook")] == [
        str(delivery.event.event_id)
    ] * 2
