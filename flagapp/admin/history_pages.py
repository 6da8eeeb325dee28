"""The readable-history pages of the flag admin: the flag's timeline, restoring a state's
older version (through the services, so approval, versions and history apply), and the
global audit log (:mod:`flagapp.admin.audit`).

:class:`HistoryURLs` mounts them: ``admin:flagapp_flag_timeline``,
``admin:flagapp_flag_restore`` (the wording and the version rebuild are
:mod:`flagapp.admin.timeline`'s) and ``admin:flagapp_audit_log``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from flagapp.exceptions import ApprovalRequired, FlagappError
from flagapp.models import Environment, Flag, FlagState

from .audit import audit_log_view
from .base import messages_of
from .forms import reason_field
from .timeline import describe_state_change, flag_timeline, restore_state, state_versions

__all__ = ["AuditURLs", "HistoryURLs", "RestoreForm"]


class RestoreForm(forms.Form):
    reason = reason_field()


class HistoryURLs:
    """Mixin for the flag admin: the timeline, restore and the audit log."""

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view  # type: ignore[attr-defined]
        return [
            path("audit-log/", view(self.audit_log_view), name="flagapp_audit_log"),
            path(
                "<int:object_id>/timeline/",
                view(self.timeline_view),
                name="flagapp_flag_timeline",
            ),
            path(
                "<int:object_id>/restore/<int:history_id>/",
                view(self.restore_view),
                name="flagapp_flag_restore",
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": title,
            "opts": Flag._meta,
        }

    def timeline_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        flag = get_object_or_404(Flag, pk=object_id)
        envs = list(Environment.objects.order_by("order", "key"))
        env = next((e for e in envs if e.key == request.GET.get("environment")), None)
        sees_states = request.user.has_perm("flagapp.view_flagstate") or request.user.has_perm(
            "flagapp.change_flagstate"
        )
        entries = flag_timeline(flag, env.pk if env else None)
        if not sees_states:
            entries = [e for e in entries if e["kind"] == "flag"]
        context = {
            **self._context(request, f"History of {flag.key}"),
            "flag": flag,
            "entries": entries,
            "environments": envs,
            "environment": env,
            "can_restore": request.user.has_perm("flagapp.change_flagstate"),
        }
        return TemplateResponse(request, "admin/flagapp/flag/timeline.html", context)

    def restore_view(self, request: HttpRequest, object_id: int, history_id: int) -> HttpResponse:
        if not request.user.has_perm("flagapp.change_flagstate"):
            raise PermissionDenied
        flag = get_object_or_404(Flag, pk=object_id)
        row = FlagState.history.filter(history_id=history_id, flag_id=flag.pk).first()
        if row is None:
            raise PermissionDenied("no such history entry for this flag")
        versions = state_versions(flag.pk, row.environment_id)
        target = next(v for v in versions if v.history_id == history_id)
        env = Environment.objects.get(pk=row.environment_id)
        current = versions[-1]
        form = RestoreForm(request.POST if request.method == "POST" else None)
        timeline = reverse("admin:flagapp_flag_timeline", args=[flag.pk])
        refusal = ""
        if target.history_id == current.history_id:
            refusal = f"Version {target.version} is the current version: nothing to restore."
        elif request.method == "POST" and form.is_valid():
            try:
                with transaction.atomic():
                    restore_state(
                        flag, history_id, actor=request.user, reason=form.cleaned_data["reason"]
                    )
            except ApprovalRequired as exc:
                from flagapp.governance import change_requests as crs

                try:
                    cr = crs.propose_from(
                        exc,
                        author=request.user,
                        reason=(
                            f"restore of version {target.version}: {form.cleaned_data['reason']}"
                        ),
                    )
                except FlagappError as err:
                    form.add_error(None, f"This restore needs an approved change request: {err}")
                else:
                    url = reverse("admin:flagapp_changerequest_change", args=[cr.pk])
                    messages.info(
                        request,
                        format_html(
                            "{} is protected: nothing was changed yet. "
                            '<a href="{}">Change request #{}</a> holds the restore for review.',
                            env.key, url, cr.pk,
                        ),
                    )  # fmt: skip
                    return HttpResponseRedirect(timeline)
            except FlagappError as exc:
                for msgs in messages_of(exc).values():
                    for msg in msgs:
                        form.add_error(None, msg)
            else:
                messages.success(
                    request, f"{flag.key} in {env.key}: version {target.version} restored."
                )
                return HttpResponseRedirect(timeline)
        context = {
            **self._context(
                request, f"Restore {flag.key} in {env.key} to version {target.version}"
            ),
            "flag": flag,
            "environment": env,
            "target": target,
            "current": current,
            "lines": describe_state_change(current, target),
            "form": form,
            "refusal": refusal,
            "timeline_url": timeline,
        }
        return TemplateResponse(request, "admin/flagapp/flag/restore.html", context)

    def audit_log_view(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        return audit_log_view(self, request)


#: The name this mixin had while it lived in :mod:`flagapp.admin.audit`.
AuditURLs = HistoryURLs
