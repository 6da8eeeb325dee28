"""Admin for change requests: the pending list, the diff, the blast radius, approve/reject.

Change requests are never added or edited as rows: they are created when a change to a
high-risk flag or a protected environment is submitted (admin or API), and they move only
through ``flagapp.governance.change_requests`` (approve, reject, apply), so the two-person
rule and the history hold whatever screen is used. This admin is therefore read-only plus
three buttons, each a POST to its own URL.

Imported by ``flagapp.admin`` (which registers everything on ``admin.site``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from flagapp.exceptions import (
    ApprovalRequired,
    DuplicateChangeRequest,
    FlagappError,
)
from flagapp.governance import change_requests as crs
from flagapp.models import ChangeRequest, Flag, FlagState, RolloutPlan
from flagapp.rollouts.plans import plans_started_by

__all__ = ["CONFIRM_FIELD", "ChangeRequestAdmin", "confirm_blast_radius", "propose_from_admin"]

#: The checkbox a user ticks to apply a change after seeing its blast radius.
CONFIRM_FIELD = "_flagapp_confirm_blast_radius"


class PendingFirstFilter(admin.SimpleListFilter):
    """Status filter whose default view is the reviewers' queue: pending requests."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*ChangeRequest.STATUS_CHOICES, ("all", "all")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value() or ChangeRequest.STATUS_PENDING
        return queryset if value == "all" else queryset.filter(status=value)

    def choices(self, changelist: Any) -> Any:
        current = self.value() or ChangeRequest.STATUS_PENDING
        for value, label in self.lookup_choices:
            yield {
                "selected": current == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }


class OperationFilter(admin.SimpleListFilter):
    """The operation filter in words ("targeting change"), not the services' names."""

    title = "change"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(crs.OPERATION_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(kind=self.value()) if self.value() else queryset


@admin.register(ChangeRequest)
class ChangeRequestAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "flag_key",
        "environment_key",
        "change",
        "status",
        "author",
        "created_at",
        "radius",
    ]
    list_display_links = ["id", "flag_key"]
    list_filter = [PendingFirstFilter, "environment_key", OperationFilter]
    search_fields = ["flag_key", "reason", "author__username"]
    ordering = ["-created_at"]
    change_form_template = "admin/flagapp/changerequest/change_form.html"
    readonly_fields = (
        "flag_key",
        "environment_key",
        "change",
        "base_version",
        "author",
        "reason",
        "status",
        "reviewer",
        "review_comment",
        "detail",
        "created_at",
        "reviewed_at",
        "applied_at",
    )
    fields = readonly_fields

    @admin.display(description="change", ordering="kind")
    def change(self, obj: ChangeRequest) -> str:
        return crs.describe_operation(obj.kind, obj.payload)

    @admin.display(description="blast radius")
    def radius(self, obj: ChangeRequest) -> str:
        data = obj.blast_radius
        if not data:
            return "-"
        if not data.get("sampled"):
            return "unknown (no sample)"
        return f"{data['changed']}/{data['sampled']} ({data['share']:.1%})"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user: Any = request.user
        return bool(
            super().has_view_permission(request, obj) or user.has_perm(crs.APPROVE_PERMISSION)
        )

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/approve/", view(self.approve_view), name="flagapp_changerequest_approve"
            ),
            path("<int:pk>/reject/", view(self.reject_view), name="flagapp_changerequest_reject"),
            path("<int:pk>/apply/", view(self.apply_view), name="flagapp_changerequest_apply"),
            path(
                "<int:pk>/withdraw/",
                view(self.withdraw_view),
                name="flagapp_changerequest_withdraw",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        cr = get_object_or_404(ChangeRequest, pk=object_id)
        diff = crs.diff(cr)
        for row in diff["fields"]:
            row["before_json"] = _pretty(row["before"])
            row["after_json"] = _pretty(row["after"])
        context = {
            **(extra_context or {}),
            "cr": cr,
            "operation": crs.describe_operation(cr.kind, cr.payload),
            "diff": diff,
            "radius": cr.blast_radius,
            "rollouts": [_plan_summary(plan) for plan in plans_started_by(cr)],
            # A request made against a version that moved on cannot be approved (it would
            # only conflict): the page says so and the author proposes it again.
            "can_review": cr.status == ChangeRequest.STATUS_PENDING
            and not diff["stale"]
            and crs.can_review(cr, request.user),
            "is_author": request.user.pk == cr.author_id,
            "can_withdraw": request.user.pk == cr.author_id
            and cr.status in (ChangeRequest.STATUS_PENDING, ChangeRequest.STATUS_APPROVED),
            "can_apply": cr.status == ChangeRequest.STATUS_APPROVED,
            "history": cr.history.select_related("history_user").order_by("history_id"),
            "show_save": False,
            "show_save_and_continue": False,
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _act(self, request: HttpRequest, pk: int, verb: str) -> HttpResponse:
        if request.method != "POST":
            raise PermissionDenied("POST only")
        cr = get_object_or_404(ChangeRequest, pk=pk)
        comment = str(request.POST.get("comment", ""))
        try:
            if verb == "withdraw":
                cr = crs.withdraw(cr, actor=request.user, reason=comment)
            elif verb == "approve":
                cr = crs.approve(cr, reviewer=request.user, comment=comment)
            elif verb == "reject":
                cr = crs.reject(cr, reviewer=request.user, comment=comment)
            else:
                cr = crs.apply(cr, actor=request.user)
        except FlagappError as exc:
            messages.error(request, str(exc))
        else:
            if cr.status == ChangeRequest.STATUS_APPLIED:
                messages.success(request, f"Change request #{cr.pk} approved and applied.")
            elif cr.status == ChangeRequest.STATUS_REJECTED:
                messages.success(request, f"Change request #{cr.pk} rejected.")
            elif cr.status == ChangeRequest.STATUS_WITHDRAWN:
                messages.success(request, f"Change request #{cr.pk} withdrawn.")
            elif cr.status == ChangeRequest.STATUS_CONFLICTED:
                messages.error(request, f"Change request #{cr.pk} conflicted: {cr.detail}")
            else:
                messages.warning(request, f"Change request #{cr.pk}: {cr.detail}")
        return HttpResponseRedirect(reverse("admin:flagapp_changerequest_change", args=[cr.pk]))

    def approve_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._act(request, pk, "approve")

    def reject_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._act(request, pk, "reject")

    def apply_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._act(request, pk, "apply")

    def withdraw_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._act(request, pk, "withdraw")


def propose_from_admin(request: HttpRequest, exc: ApprovalRequired, form: Any) -> Any:
    """Turn a refused admin save into a change request; the hook ``flagapp.admin.base`` calls.

    Called when the services raised ``ApprovalRequired`` for a form the user submitted
    (nothing was saved). Creates the request from ``exc.change`` with the form's reason,
    and tells the user where it is: a non-field error on the form (the form is shown
    again, unsaved) linking to the request page with its blast radius. A proposal the
    governance layer refuses (permission, invalid change) becomes that error instead.
    Returns the request, or None.
    """
    reason = str((getattr(form, "cleaned_data", None) or {}).get("reason") or "")
    try:
        cr = crs.propose_from(exc, author=request.user, reason=reason)
    except DuplicateChangeRequest as dup:
        form.add_error(
            None,
            format_html(
                "This change needs an approved change request. Nothing was saved: the same "
                'change is already pending review as <a href="{}" id="cr-duplicate">change '
                "request #{}</a>.",
                reverse("admin:flagapp_changerequest_change", args=[dup.existing_id]),
                dup.existing_id,
            ),
        )
        return None
    except FlagappError as err:
        form.add_error(None, f"This change needs an approved change request: {err}")
        return None
    url = reverse("admin:flagapp_changerequest_change", args=[cr.pk])
    radius = blast_radius_html(cr.blast_radius)
    form.add_error(
        None,
        format_html(
            "This change needs an approved change request. Nothing was saved: "
            '<a href="{}" id="cr-created">change request #{}</a> was created for review ({}).',
            url,
            cr.pk,
            radius,
        ),
    )
    messages.info(
        request,
        format_html('Change request <a href="{}">#{}</a> created: {}.', url, cr.pk, radius),
    )
    return cr


def _form_token(request: HttpRequest) -> str:
    """Identifies the submitted change: the POST data without the CSRF token and the
    confirmation itself. Editing the form after seeing the radius asks again."""
    items = sorted(
        (k, request.POST.getlist(k))
        for k in request.POST
        if k not in (CONFIRM_FIELD, "csrfmiddlewaretoken")
    )
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:20]


def confirm_blast_radius(request: HttpRequest, form: Any, saved: Any) -> bool:
    """Whether an admin save of a flag or flag state may be committed now.

    Called after the services applied the change inside the admin's savepoint, before it
    is committed. When the change would serve a different variant to some of the recent
    evaluation contexts, the first submit is refused: the form comes back with the blast
    radius and a checkbox; submitting the same form again with the box ticked applies it.
    Changes that move nobody (metadata, a disabled flag, no sample yet) pass at once, and
    so does the kill-switch action (an emergency does not wait for a preview).
    """
    if isinstance(saved, FlagState):
        flag, envs = saved.flag, [saved.environment]
    elif isinstance(saved, Flag):
        flag, envs = saved, None
    else:
        return True
    radius = crs.radius_since_published(flag, envs)
    if radius is None or radius.changed == 0:
        return True
    token = _form_token(request)
    if request.POST.get(CONFIRM_FIELD) == token:
        return True
    transitions = ", ".join(f"{label}: {n}" for label, n in list(radius.transitions.items())[:4])
    form.add_error(
        None,
        format_html(
            '<span id="blast-radius-preview">Blast radius: {} ({}). Nothing was saved yet.</span> '
            '<label><input type="checkbox" name="{}" value="{}" id="blast-radius-confirm"> '
            "Apply this change</label> and save again to confirm.",
            radius.summary(),
            transitions,
            CONFIRM_FIELD,
            token,
        ),
    )
    return False


def _plan_summary(plan: RolloutPlan) -> dict[str, Any]:
    """A draft rollout plan in words, for the reviewer of its first step."""
    from flagapp.rollouts.schedule import format_bps

    seconds = plan.min_step_seconds
    hold = f"{seconds // 3600} h" if seconds and seconds % 3600 == 0 else (
        f"{seconds // 60} min" if seconds and seconds % 60 == 0 else f"{seconds} s"
    )  # fmt: skip
    return {
        "plan": plan,
        "steps": " -> ".join(format_bps(int(bps)) for bps in plan.steps),
        "hold": hold,
        "guardrails": [str(g) for g in plan.guardrails.all()],
    }


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def blast_radius_html(radius: dict[str, Any] | None) -> str:
    """A one-line summary for list pages and messages."""
    if not radius:
        return "blast radius not computed"
    if not radius.get("sampled"):
        return "blast radius unknown: no recent contexts sampled"
    return format_html(
        "{} of {} recent contexts ({}) would change",
        radius.get("changed", 0),
        radius.get("sampled", 0),
        f"{radius.get('share', 0.0):.1%}",
    )
