"""The admin's SDK keys page: list (filter by environment and status), create (the token
is shown once, on the response to the POST, and never again), revoke with a reason.

Every write goes through :mod:`flagapp.services.sdk_keys`. The token is never put in a
message, the session, the admin's LogEntry or a redirect URL: it exists only in the body of
the one response that created it, sent with ``Cache-Control: no-store``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from flagapp.exceptions import ChangeNotPermitted, FlagValidationError
from flagapp.models import Environment, SdkKey
from flagapp.services import sdk_keys as service

from .base import attach_errors, reason_action
from .forms import reason_field

__all__ = ["SdkKeyAdmin"]


class SdkKeyCreateForm(forms.Form):
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.order_by("order", "key"),
        help_text="The key reads this environment's flags, and only this one.",
    )
    name = forms.CharField(
        max_length=100,
        required=False,
        help_text="Which service or app uses it (shown in this list, never secret).",
    )
    scope = forms.ChoiceField(
        choices=SdkKey._meta.get_field("scope").choices or [],
        initial="server",
        help_text="client: for browsers and apps, where the key is public — OFREP "
        "(evaluated answers) only, never the ruleset with its rules and segment members.",
    )
    reason = reason_field()


class RevokeForm(forms.Form):
    reason = reason_field()


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "active"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SdkKey]) -> QuerySet[SdkKey]:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


def _when(value: Any) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else "never"


@admin.register(SdkKey)
class SdkKeyAdmin(admin.ModelAdmin):
    list_display = [
        "label",
        "public_id",
        "environment",
        "scope",
        "status",
        "last_used",
        "created_at",
        "created_by",
    ]
    list_filter = ["environment", "scope", StatusFilter]
    search_fields = ["name", "public_id"]
    list_select_related = ["environment", "created_by"]
    ordering = ["environment__order", "environment__key", "-created_at"]
    actions = ["revoke_selected"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked keys stay listed: who had access, until when, and why it ended

    @admin.display(description="name", ordering="name")
    def label(self, key: SdkKey) -> str:
        return key.name or "(no name)"

    @admin.display(description="status", ordering="revoked_at")
    def status(self, key: SdkKey) -> str:
        if key.revoked_at is None:
            return "active"
        return f"revoked {_when(key.revoked_at)}"

    @admin.display(description="last used", ordering="last_used_at")
    def last_used(self, key: SdkKey) -> str:
        return _when(key.last_used_at)

    # --- revoke (list action and the key's page) --------------------------------------------

    @admin.action(description="Revoke the selected SDK keys", permissions=["change"])
    def revoke_selected(
        self, request: HttpRequest, queryset: QuerySet[SdkKey]
    ) -> TemplateResponse | None:
        def perform(key: SdkKey, reason: str) -> str | None:
            try:
                service.revoke_sdk_key(key, actor=request.user, reason=reason)
            except (FlagValidationError, ChangeNotPermitted) as exc:
                return "; ".join(exc.messages) if hasattr(exc, "messages") else str(exc)
            return None

        return reason_action(
            self,
            request,
            queryset,
            action="revoke_selected",
            title="Revoke SDK keys",
            explanation=(
                "Services using these keys are refused at once (other server processes within "
                "SDK_KEY_CACHE_SECONDS). A revoked key cannot be re-activated."
            ),
            submit_label="Revoke",
            perform=perform,
        )

    # --- create: the token once ---------------------------------------------------------------

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = SdkKeyCreateForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            cd = form.cleaned_data
            try:
                key, token = service.create_sdk_key(
                    cd["environment"],
                    name=cd["name"],
                    scope=cd["scope"],
                    actor=request.user,
                    reason=cd["reason"],
                )
            except (FlagValidationError, ChangeNotPermitted) as exc:
                attach_errors(form, exc)
            else:
                self.log_addition(request, key, f"Added. Reason: {cd['reason']}")
                response = TemplateResponse(
                    request,
                    "admin/flagapp/sdkkey/created.html",
                    {
                        **self._context(request, f"SDK key created: {key}"),
                        "key": key,
                        "token": token,
                    },
                )
                add_never_cache_headers(response)
                return response
        return TemplateResponse(
            request,
            "admin/flagapp/sdkkey/add.html",
            {**self._context(request, "Create an SDK key"), "form": form},
        )

    # --- a key's page: details and revoke -------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        key = get_object_or_404(
            SdkKey.objects.select_related("environment", "created_by", "revoked_by"),
            pk=object_id if str(object_id).isdigit() else -1,
        )
        if not self.has_view_or_change_permission(request, key):
            raise PermissionDenied
        can_revoke = key.revoked_at is None and self.has_change_permission(request, key)
        form = RevokeForm(request.POST if request.method == "POST" else None)
        if request.method == "POST":
            if not can_revoke:
                raise PermissionDenied
            if form.is_valid():
                try:
                    reason = form.cleaned_data["reason"]
                    service.revoke_sdk_key(key, actor=request.user, reason=reason)
                except (FlagValidationError, ChangeNotPermitted) as exc:
                    attach_errors(form, exc)
                else:
                    self.log_change(request, key, f"Revoked. Reason: {form.cleaned_data['reason']}")
                    self.message_user(request, f"Revoked {key}.", messages.SUCCESS)
                    return HttpResponseRedirect(
                        reverse("admin:flagapp_sdkkey_change", args=[key.pk])
                    )
        rows = [
            ("Name", key.name or "(no name)"),
            ("Environment", f"{key.environment.name} ({key.environment.key})"),
            ("Public id", key.public_id),
            ("Scope", key.get_scope_display()),
            ("Created", f"{_when(key.created_at)} by {key.created_by or 'system'}"),
            ("Why", key.created_reason or "—"),
            ("Last used", _when(key.last_used_at)),
            ("Status", self.status(key)),
        ]
        if key.revoked_at is not None:
            rows += [
                ("Revoked by", str(key.revoked_by or "system")),
                ("Why revoked", key.revoke_reason or "—"),
            ]
        return TemplateResponse(
            request,
            "admin/flagapp/sdkkey/detail.html",
            {
                **self._context(request, str(key)),
                "key": key,
                "rows": rows,
                "form": form if can_revoke else None,
                "original": key,
            },
        )

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "has_view_permission": self.has_view_permission(request),
        }
