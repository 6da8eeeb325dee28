"""Promote (copy) flag states from one environment to another, from the admin.

Three steps, all through :mod:`flagapp.services.environments`: pick a source and a target;
preview what changes per flag (before → after, in the words of
:mod:`flagapp.admin.wording`, and whether it needs approval), untick flags to leave out; give
a reason and promote. Flags whose change needs approval (a protected target, a high-risk
flag) become change requests (:func:`flagapp.governance.change_requests.propose_from`), the
others are applied, in one transaction. The preview carries a digest of what it showed: if
the environments changed in between, the page shows the new preview instead of applying.

Mounted on the environment admin (``admin:flagapp_environment_promote``); needs
``flagapp.change_flagstate`` (the services check the rest per flag).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from flagapp import services
from flagapp.exceptions import (
    ApprovalRequired,
    DuplicateChangeRequest,
    FlagappError,
    FlagValidationError,
)
from flagapp.models import Environment

from .base import attach_errors, messages_of
from .forms import reason_field
from .wording import prerequisite_text, rule_text, serve_text

__all__ = ["PromoteURLs", "promote_view", "state_lines"]


class PromoteForm(forms.Form):
    source = forms.ModelChoiceField(
        queryset=Environment.objects.order_by("order", "key"),
        to_field_name="key",
        label="From",
        help_text="The environment whose flag states are copied.",
    )
    target = forms.ModelChoiceField(
        queryset=Environment.objects.order_by("order", "key"),
        to_field_name="key",
        label="To",
        help_text="The environment that receives them.",
    )
    include_enabled = forms.BooleanField(
        required=False,
        initial=True,
        label="Copy on/off too",
        help_text="Untick to copy targeting only and keep each flag's on/off in the target.",
    )

    def clean(self) -> dict[str, Any]:
        cd = super().clean() or {}
        if cd.get("source") is not None and cd.get("source") == cd.get("target"):
            self.add_error("target", "Pick an environment other than the source.")
        return cd


class ApplyForm(forms.Form):
    reason = reason_field()


def state_lines(state: Mapping[str, Any] | None) -> list[str]:
    """A flag state as lines of words (what the preview compares)."""
    if state is None:
        return ["no state yet"]
    lines = ["on" if state.get("enabled") else "off (serves the caller's default)"]
    for pre in state.get("prerequisites") or []:
        lines.append(f"requires {prerequisite_text(pre)}")
    for rule in state.get("rules") or []:
        lines.append(f"rule: {rule_text(rule)}")
    lines.append(f"otherwise: {serve_text(state.get('fallthrough'))}")
    return lines


def _digest(steps: Sequence[services.PromotionStep]) -> str:
    """What the preview was computed from: every changed flag with the versions of its two
    states (every state change bumps its version, so equal versions mean an equal plan)."""
    data = [(s.flag, *s.versions) for s in steps if s.changed]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


#: Flags shown per page of the preview (only those are decoded and described); the others
#: of a larger promotion are summarised, and promoted unless the person unticks "the
#: others" — what the apply covers is exactly the flags ticked on the page shown plus, when
#: ticked, every other changed flag of the preview (the digest guards that they are the
#: same flags, in the same versions, as when the preview was made).
SHOWN = 100


def _page(value: Any, changed: int) -> int:
    """The preview page asked for, within 1..the last page."""
    try:
        page = int(value)
    except (TypeError, ValueError):
        page = 1
    return max(1, min(page, (changed - 1) // SHOWN + 1 if changed else 1))


def _rows(shown: Sequence[services.PromotionStep], selected: set[str] | None) -> list[Any]:
    rows = []
    for s in shown:
        before, after = state_lines(s.before), state_lines(s.after)
        rows.append(
            {
                "flag": s.flag,
                "url": reverse("admin:flagapp_flag_change", args=[s.flag_id]),
                "before": [(line, line not in after) for line in before],
                "after": [(line, line not in before) for line in after],
                "needs_approval": s.needs_approval,
                "checked": selected is None or s.flag in selected,
            }
        )
    return rows


def promote_view(request: HttpRequest, model_admin: Any) -> HttpResponse:
    user = request.user
    if not user.has_perm("flagapp.change_flagstate"):
        raise PermissionDenied
    if request.method == "POST":
        data: Any = request.POST
    else:  # ?source=... alone (the list action) pre-selects without complaining
        data = request.GET if "target" in request.GET else None
    form = PromoteForm(data, initial={"include_enabled": True, "source": request.GET.get("source")})
    apply_form = ApplyForm(request.POST if "_apply" in request.POST else None)
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": "Promote flags between environments",
        "opts": Environment._meta,
        "form": form,
        "apply_form": apply_form,
    }
    if data is None or not form.is_valid():
        return TemplateResponse(request, "admin/flagapp/environment/promote.html", context)
    source, target = form.cleaned_data["source"], form.cleaned_data["target"]
    include_enabled = form.cleaned_data["include_enabled"]
    steps = services.promotion_plan(source, target, include_enabled=include_enabled)
    digest = _digest(steps)
    changed = [s for s in steps if s.changed]
    page = _page(request.POST.get("page") or request.GET.get("page"), len(changed))
    shown = changed[(page - 1) * SHOWN : page * SHOWN]
    on_page = {s.flag for s in shown}
    selected = None
    if "_apply" in request.POST:
        selected = set(request.POST.getlist("flags")) & on_page
        if request.POST.get("rest"):
            selected |= {s.flag for s in changed if s.flag not in on_page}
    if "_apply" in request.POST:
        if request.POST.get("digest") != digest:
            messages.warning(
                request,
                "The environments changed since the preview: check the new preview below.",
            )
        elif not selected:
            apply_form.add_error(None, "Tick at least one flag to promote.")
        elif apply_form.is_valid():
            done = _apply(request, source, target, include_enabled, selected, apply_form)
            if done is not None:
                return done
    context.update(
        {
            "rest": len(changed) - len(shown),
            "changed": len(changed),
            "source": source,
            "target": target,
            "rows": _rows(shown, selected),
            "page": page,
            "first_shown": (page - 1) * SHOWN + 1,
            "last_shown": (page - 1) * SHOWN + len(shown),
            "previous_page": _page_query(form, page - 1) if page > 1 else "",
            "next_page": _page_query(form, page + 1) if page * SHOWN < len(changed) else "",
            "unchanged": len(steps) - len(changed),
            "approvals": sum(1 for s in changed if s.needs_approval),
            "digest": digest,
            "previewed": True,
        }
    )
    return TemplateResponse(request, "admin/flagapp/environment/promote.html", context)


def _page_query(form: PromoteForm, page: int) -> str:
    """The query string of another page of the same preview."""
    cd = form.cleaned_data
    query = {"source": cd["source"].key, "target": cd["target"].key, "page": page}
    if cd["include_enabled"]:
        query["include_enabled"] = "on"
    return "?" + urlencode(query)


def _apply(
    request: HttpRequest,
    source: Environment,
    target: Environment,
    include_enabled: bool,
    selected: set[str],
    apply_form: ApplyForm,
) -> HttpResponse | None:
    from flagapp.governance import change_requests as crs

    reason = apply_form.cleaned_data["reason"]
    pending: list[str] = []

    def propose(exc: ApprovalRequired) -> Any:
        try:
            return crs.propose_from(exc, author=request.user, reason=reason)
        except DuplicateChangeRequest as dup:
            pending.append(f"#{dup.existing_id}")
            return None

    try:
        with transaction.atomic():
            result = services.promote_environment(
                source,
                target,
                actor=request.user,
                reason=f"promote from {source.key}: {reason}",
                flags=sorted(selected),
                include_enabled=include_enabled,
                on_approval_required=propose,
            )
    except FlagValidationError as exc:
        attach_errors(apply_form, exc)
        return None
    except FlagappError as exc:
        for text in (t for texts in messages_of(exc).values() for t in texts):
            apply_form.add_error(None, text)
        return None
    if result.applied:
        messages.success(
            request,
            f"Promoted {len(result.applied)} flag(s) from {source.key} to {target.key}: "
            + ", ".join(result.applied),
        )
    proposed = [(flag, cr) for flag, cr in result.proposed if cr is not None]
    if proposed:
        links = format_html_join(
            ", ",
            '<a href="{}">#{} {}</a>',
            (
                (reverse("admin:flagapp_changerequest_change", args=[cr.pk]), cr.pk, flag)
                for flag, cr in proposed
            ),
        )
        messages.info(
            request,
            format_html(
                "{} flag(s) need approval in {}: change requests {} wait for a reviewer.",
                len(proposed),
                target.key,
                links,
            ),
        )
    if pending:
        messages.info(request, f"Already pending review: {', '.join(pending)}.")
    if result.unchanged and not (result.applied or proposed or pending):
        messages.info(request, "Nothing to promote: the target already matches.")
    return HttpResponseRedirect(reverse("admin:flagapp_environment_changelist"))


class PromoteURLs:
    """Mixed into the environment admin: the promote page and a list action opening it."""

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view  # type: ignore[attr-defined]

        def promote(request: HttpRequest) -> HttpResponse:
            return promote_view(request, self)

        return [
            path("promote/", view(promote), name="flagapp_environment_promote"),
            *super().get_urls(),  # type: ignore[misc]
        ]
