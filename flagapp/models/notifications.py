"""Webhook endpoints and the delivery log of change notifications (docs/observability.md).

Why a stored event and one delivery row per target: the dispatcher
(:mod:`flagapp.notifications.dispatcher`) records what happened once, and each endpoint (or
the owners' mailbox) gets its own row with its own attempts, so a slow or failing receiver
never delays another and an operator can see — and replay — exactly what one receiver got.
The unique (event, endpoint) constraint makes "one delivery per event per endpoint" a
database fact rather than a scheduler promise.

The endpoint's ``secret`` is stored in clear because signing needs it (HMAC, not a hash
check); it is shown once when the endpoint is created, never rendered again by the admin,
never logged and the model has no history table.
"""

from __future__ import annotations

import secrets
import uuid
from typing import ClassVar

from django.db import models

__all__ = [
    "DeliveryAttempt",
    "NotificationDelivery",
    "NotificationEvent",
    "WebhookEndpoint",
    "new_webhook_secret",
]


def new_webhook_secret() -> str:
    """A fresh signing secret: 256 random bits, prefixed so it is recognisable in a vault."""
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """A receiver of change notifications: a signed JSON webhook or a Slack incoming hook."""

    KIND_WEBHOOK = "webhook"
    KIND_SLACK = "slack"
    KIND_CHOICES: ClassVar = [
        (KIND_WEBHOOK, "JSON webhook (signed)"),
        (KIND_SLACK, "Slack-compatible ({'text': ...})"),
    ]

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=KIND_CHOICES, default=KIND_WEBHOOK)
    url = models.URLField(max_length=500)
    #: HMAC-SHA256 key of the ``Flagapp-Signature`` header. Never shown after creation.
    secret = models.CharField(max_length=128, default=new_webhook_secret)
    #: Event types delivered here (``flagapp.notifications.events.EVENT_TYPES``); empty: all.
    event_types = models.JSONField(default=list, blank=True)
    #: Environments whose events are delivered here; none selected: every environment.
    environments = models.ManyToManyField(
        "flagapp.Environment", blank=True, related_name="webhook_endpoints"
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["name"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        # Never the secret nor the URL's path (a Slack hook URL is a credential): a repr
        # ends up in tracebacks and logs.
        return f"<WebhookEndpoint {self.pk} {self.name!r} {self.kind} {self.host}>"

    @property
    def host(self) -> str:
        """The URL's scheme and host only: what may be shown where the URL may not."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


class NotificationEvent(models.Model):
    """One thing that happened, as delivered: the JSON payload every receiver gets."""

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=40, db_index=True)
    flag_key = models.CharField(max_length=200, blank=True, default="", db_index=True)
    #: Environments the event concerns (empty: not environment-specific).
    environment_keys = models.JSONField(default=list, blank=True)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        verbose_name = "notification event"

    def __str__(self) -> str:
        return f"{self.event_type} {self.flag_key}".strip()


class NotificationDelivery(models.Model):
    """One event to one target (an endpoint, or the owners by email), with its retries."""

    CHANNEL_WEBHOOK = "webhook"
    CHANNEL_SLACK = "slack"
    CHANNEL_EMAIL = "email"
    CHANNEL_CHOICES: ClassVar = [
        (CHANNEL_WEBHOOK, "webhook"),
        (CHANNEL_SLACK, "slack"),
        (CHANNEL_EMAIL, "email"),
    ]
    STATUS_PENDING = "pending"
    STATUS_SUCCEEDED = "succeeded"
    STATUS_FAILED = "failed"
    STATUS_CHOICES: ClassVar = [
        (STATUS_PENDING, "pending"),
        (STATUS_SUCCEEDED, "succeeded"),
        (STATUS_FAILED, "failed"),
    ]

    event = models.ForeignKey(
        NotificationEvent, on_delete=models.CASCADE, related_name="deliveries"
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    channel = models.CharField(max_length=16, choices=CHANNEL_CHOICES)
    #: Email channel only: the addresses (owners at the time of the event).
    recipients = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=16, choices=STATUS_CHOICES, default=STATUS_PENDING, db_index=True
    )
    #: Attempts started since the last replay (bounded by WEBHOOK_MAX_ATTEMPTS).
    attempts = models.PositiveIntegerField(default=0)
    #: When the next attempt is due; while an attempt runs, the end of its lease.
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_response_code = models.PositiveIntegerField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        verbose_name = "notification delivery"
        verbose_name_plural = "notification deliveries"
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["event", "endpoint"], name="flagapp_delivery_once_per_endpoint"
            )
        ]

    def __str__(self) -> str:
        target = self.endpoint.name if self.endpoint_id and self.endpoint else self.channel
        return f"{self.event.event_type} -> {target} ({self.status})"


class DeliveryAttempt(models.Model):
    """One try of a delivery: what the receiver answered and how long it took."""

    delivery = models.ForeignKey(
        NotificationDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    #: The first bytes of the response body (bounded), for diagnosis.
    response_excerpt = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering: ClassVar = ["delivery", "started_at", "id"]

    def __str__(self) -> str:
        outcome = self.response_code or self.error[:40] or "?"
        return f"attempt {self.number}: {outcome}"
