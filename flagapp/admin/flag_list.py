"""The flag list: its filters, one on/off column per environment (with the toggle of
:mod:`flagapp.admin.toggle`), pending change requests, expiry, and the list's actions —
the kill switch per environment and archiving, each asking for a reason first
(:func:`flagapp.admin.base.reason_action`) and applied through the services.

Mixed into :class:`flagapp.admin.flags.FlagAdmin` (the flag page and its saving live
there)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from flagapp import services
from flagapp.exceptions import FlagappError, FlagValidationError, VersionConflict
from flagapp.models import Environment, Flag

from .base import SERVICE_ERRORS, messages_of, reason_action

__all__ = ["ExpiredFilter", "FlagListMixin", "PendingChangeFilter"]


class ExpiredFilter(admin.SimpleListFilter):
    title = "expired"
    parameter_name = "expired"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Expired"), ("no", "Not expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        today = timezone.localdate()
        if self.value() == "yes":
            return queryset.filter(expires_on__lt=today)
        if self.value() == "no":
            return queryset.exclude(expires_on__lt=today)
        return queryset


class PendingChangeFilter(admin.SimpleListFilter):
    title = "pending change request"
    parameter_name = "pending"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Waiting for review"), ("no", "None")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(change_requests__status="pending").distinct()
        if self.value() == "no":
            return queryset.exclude(change_requests__status="pending")
        return queryset


class FlagListMixin:
    """The flag admin's list columns and actions."""

    # one on/off column per environment ----------------------------------------------

    def _environments(self, request: HttpRequest) -> list[Environment]:
        cached = getattr(request, "_flagapp_envs", None)
        if cached is None:
            cached = list(Environment.objects.order_by("order", "key"))
            request._flagapp_envs = cached  # type: ignore[attr-defined]
        return cached

    def get_list_display(self, request: HttpRequest) -> Any:
        columns: list[Any] = ["key", "name"]
        columns += self.environment_columns(request, self._environments(request))  # type: ignore[attr-defined]
        return [
            *columns,
            "pending_requests",
            "last_evaluated",
            "owner",
            "flag_type",
            "risk",
            "expiry",
            "archived",
        ]

    @admin.display(description="pending changes", ordering="pending_count")
    def pending_requests(self, flag: Flag) -> str:
        n = getattr(flag, "pending_count", 0)
        if not n:
            return "-"
        url = reverse("admin:flagapp_changerequest_changelist")
        return format_html(
            '<a href="{}?flag_key={}" class="flagapp-pending">{} pending</a>', url, flag.key, n
        )

    @admin.display(description="expires", ordering="expires_on")
    def expiry(self, flag: Flag) -> str:
        if flag.expires_on is None:
            return "-"
        if flag.expires_on < timezone.localdate():
            return format_html(
                '<strong class="flagapp-expired">{} (expired)</strong>', flag.expires_on.isoformat()
            )
        return flag.expires_on.isoformat()

    # actions: kill switch per environment, archive -----------------------------------------

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = super().get_actions(request)  # type: ignore[misc]
        actions.pop("delete_selected", None)
        if request.user.has_perm("flagapp.change_flagstate"):
            for env in self._environments(request):
                name = f"kill_switch_{env.key}"
                actions[name] = (
                    self._kill_action(env, name),
                    name,
                    f"Kill switch: turn selected flags OFF in {env.key}",
                )
        if request.user.has_perm("flagapp.change_flag"):
            actions["archive_flags"] = (
                FlagListMixin.archive_flags,
                "archive_flags",
                "Archive selected flags",
            )
        return actions

    def _kill_action(self, env: Environment, name: str) -> Callable[..., Any]:
        def kill(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
            def perform(flag: Flag, reason: str) -> str | None:
                try:
                    services.set_flag_enabled(flag, env, False, actor=request.user, reason=reason)
                except SERVICE_ERRORS as exc:
                    return " ".join(m for ms in messages_of(exc).values() for m in ms)
                modeladmin.log_change(request, flag, f"Kill switch in {env.key}. Reason: {reason}")
                return None

            return reason_action(
                modeladmin,
                request,
                queryset,
                action=name,
                title=f"Kill switch in {env.key}",
                explanation=(
                    f"Turn these flags OFF in {env.name}: every caller gets its own "
                    "default value at once. The change is recorded with your reason."
                ),
                submit_label=f"Turn off in {env.key}",
                perform=perform,
            )

        return kill

    @staticmethod
    def archive_flags(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        def perform(flag: Flag, reason: str) -> str | None:
            # services.archive_flag also pauses running rollouts and withdraws open change
            # requests (the API's archive does the same); the notes said so beforehand.
            try:
                services.archive_flag(flag, actor=request.user, reason=reason)
            except (*SERVICE_ERRORS, FlagappError) as exc:
                if isinstance(exc, FlagValidationError | VersionConflict):
                    return " ".join(m for ms in messages_of(exc).values() for m in ms)
                return str(exc)
            modeladmin.log_change(request, flag, f"Archived. Reason: {reason}")
            return None

        return reason_action(
            modeladmin,
            request,
            queryset,
            action="archive_flags",
            title="Archive flags",
            explanation="Archived flags leave every snapshot: callers get their default "
            "(FLAG_NOT_FOUND).",
            submit_label="Archive",
            perform=perform,
            notes=[note for flag in queryset for note in services.archive_notes(flag)],
        )
