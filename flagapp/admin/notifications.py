"""Webhook endpoints and the notification delivery log in the admin.

Endpoints are saved through :mod:`flagapp.services.webhooks` (validation naming the field,
the secret generated there). The endpoint's secret is not a form field: it is generated on
creation and shown once on a page rendered straight into the response (no message storage,
no log, no history), like a token; "Rotate the signing secret" makes and shows a new one.
The delivery log is read-only: status, attempts, last response code, duration, error and
next retry per delivery, every attempt on its page, and "Replay selected deliveries" to
queue failed ones again (:func:`flagapp.notifications.delivery.replay`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html

from flagapp.models import (
    DeliveryAttempt,
    NotificationDelivery,
    WebhookEndpoint,
)
from flagapp.notifications.events import EVENT_TYPES
from flagapp.services import webhooks

from .base import ServiceAdminMixin

__all__ = ["NotificationDeliveryAdmin", "WebhookEndpointAdmin"]


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=[(key, f"{key}: {text}") for key, text in EVENT_TYPES.items()],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None selected: every event type.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("name", "kind", "url", "event_types", "environments", "active")
        help_texts = {
            "environments": "None selected: every environment. Events that concern no "
            "environment (flag metadata, expiry reminders, the stale report) always go.",
        }

    def clean_url(self) -> str:
        url = str(self.cleaned_data["url"])
        problem = webhooks.url_problem(url)  # the service's own rule, shown with the others
        if problem:
            raise forms.ValidationError(f"url: {problem}")
        return url


def _secret_page(request: HttpRequest, admin_: Any, endpoint: Any) -> TemplateResponse:
    response = TemplateResponse(
        request,
        "admin/flagapp/webhookendpoint/secret.html",
        {**admin_.admin_site.each_context(request), "opts": admin_.opts, "endpoint": endpoint},
    )
    response["Cache-Control"] = "no-store"
    return response


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("name", "kind", "host", "subscribed", "active", "updated_at")
    list_filter = ("kind", "active")
    search_fields = ("name", "url")
    filter_horizontal = ("environments",)
    actions = ["rotate_secret"]

    @admin.display(description="events")
    def subscribed(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.event_types or []) or "all"

    def apply(
        self, request: HttpRequest, form: Any, formsets: Sequence[Any], obj: Any, change: bool
    ) -> Model:
        cd = form.cleaned_data
        fields = {
            "name": cd.get("name"),
            "kind": cd.get("kind"),
            "url": cd.get("url"),
            "event_types": list(cd.get("event_types") or []),
            "environments": list(cd.get("environments") or []),
            "active": bool(cd.get("active")),
        }
        if not change:
            endpoint, _secret = webhooks.create_webhook(actor=request.user, **fields)
            return endpoint
        stored = WebhookEndpoint.objects.get(pk=obj.pk)
        return webhooks.update_webhook(stored, actor=request.user, **fields)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        webhooks.delete_webhook(obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhooks.delete_webhook(endpoint, actor=request.user)

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        return admin.ModelAdmin.construct_change_message(self, request, form, formsets, add)

    def response_add(
        self, request: HttpRequest, obj: WebhookEndpoint, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The one time the new endpoint's secret is shown."""
        return _secret_page(request, self, WebhookEndpoint.objects.get(pk=obj.pk))

    @admin.action(description="Rotate the signing secret (shown once)", permissions=["change"])
    def rotate_secret(
        self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]
    ) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Rotate one endpoint at a time.", messages.WARNING)
            return None
        endpoint, _secret = webhooks.rotate_webhook_secret(queryset.get(), actor=request.user)
        return _secret_page(request, self, endpoint)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = (
        "number",
        "started_at",
        "response_code",
        "duration_ms",
        "error",
        "response_excerpt",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "event_type",
        "flag_key",
        "target",
        "status",
        "attempts",
        "last_response_code",
        "last_duration_ms",
        "next_attempt_at",
        "short_error",
    )
    list_filter = ("status", "channel", "event__event_type")
    search_fields = ("event__flag_key", "endpoint__name", "event__event_id")
    list_select_related = ("event", "endpoint")
    fields = (
        "event_type",
        "event_id",
        "target",
        "channel",
        "recipients",
        "status",
        "attempts",
        "next_attempt_at",
        "last_response_code",
        "last_duration_ms",
        "last_error",
        "delivered_at",
        "created_at",
        "payload",
    )
    readonly_fields = fields
    inlines = (DeliveryAttemptInline,)
    actions = ["replay_deliveries"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The log is written by the deliveries only: read-only pages (view permission); the
        # replay action asks for change_notificationdelivery itself.
        return False

    @admin.display(description="event", ordering="event__event_type")
    def event_type(self, obj: NotificationDelivery) -> str:
        return obj.event.event_type

    @admin.display(description="event id")
    def event_id(self, obj: NotificationDelivery) -> str:
        return str(obj.event.event_id)

    @admin.display(description="flag", ordering="event__flag_key")
    def flag_key(self, obj: NotificationDelivery) -> str:
        return obj.event.flag_key

    @admin.display(description="target")
    def target(self, obj: NotificationDelivery) -> str:
        if obj.endpoint is not None:
            return f"{obj.endpoint.name} ({obj.endpoint.host})"
        return f"email to {len(obj.recipients or [])} recipient(s)"

    @admin.display(description="error")
    def short_error(self, obj: NotificationDelivery) -> str:
        return (obj.last_error or "")[:80]

    @admin.display(description="payload")
    def payload(self, obj: NotificationDelivery) -> str:
        text = json.dumps(obj.event.payload, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html("<pre>{}</pre>", text)

    @admin.action(description="Replay selected deliveries", permissions=["replay"])
    def replay_deliveries(
        self, request: HttpRequest, queryset: QuerySet[NotificationDelivery]
    ) -> None:
        from flagapp.notifications.delivery import replay

        ids = replay(list(queryset))
        skipped = queryset.count() - len(ids)
        text = f"Queued {len(ids)} deliver{'y' if len(ids) == 1 else 'ies'} again."
        if skipped:
            text += f" {skipped} still pending left as they are."
        self.message_user(request, text, messages.SUCCESS)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("flagapp.change_notificationdelivery"))
