"""Turning a flag on or off in one environment from the admin (issue 13 part 1): who may,
what it does (a change request where the policy asks for approval), the toggle links of the
flag page's cards and the flag list's columns, and the confirmation view.

:func:`toggle_view` goes through ``services.set_flag_enabled`` (the kill switch of the flag
list's actions): where the policy asks for approval (turning on in a protected
environment, any change of a high-risk flag but the kill switch) it creates a change
request instead and says so. GET shows a small confirmation page (works without
JavaScript; turning on shows the blast radius first); ``flagapp/overview.js`` replaces an
off link by an inline reason prompt that POSTs to the same view. Mounted on the flag admin
by :class:`flagapp.admin.overview.OverviewAdminMixin`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe

from flagapp import services
from flagapp.exceptions import (
    ApprovalRequired,
    DuplicateChangeRequest,
    FlagappError,
)
from flagapp.models import Environment, Flag, FlagState
from flagapp.policy import kill_switch_bypasses_approval, requires_approval

from .base import messages_of
from .forms import reason_field

__all__ = ["ToggleForm", "Toggles", "can_toggle", "needs_approval", "toggle_view"]

CHANGE_STATE = "flagapp.change_flagstate"
CHANGE_PROTECTED = "flagapp.change_protected_environment"


# --- who may toggle, and what a toggle does ------------------------------------------------


def can_toggle(user: Any, environment: Environment) -> bool:
    """The permissions ``services.set_flag_enabled`` checks: change permission on flag
    states, plus the protected-environment one where it applies."""
    if not user.has_perm(CHANGE_STATE):
        return False
    return not environment.protected or bool(user.has_perm(CHANGE_PROTECTED))


def needs_approval(flag: Flag, environment: Environment, enabled: bool) -> bool:
    """Whether turning ``flag`` on (``enabled``) or off in ``environment`` becomes a change
    request: the policy of the services (no query)."""
    if not requires_approval(flag, environment):
        return False
    return enabled or not kill_switch_bypasses_approval()


class Toggles:
    """The toggle links of one environment on one page: links to the confirmation page
    (``?enabled=0|1&next=<this page>``) that ``flagapp/overview.js`` turns into an inline
    reason prompt (it POSTs the link's path with its query's fields; ``title`` is the
    question, ``data-submit`` the button). Everything but the flag's id and key is built
    once per column: a list page has one link per flag and environment."""

    def __init__(self, environment: Environment, next_url: str, *, short: bool) -> None:
        self.environment = environment
        self.short = short
        flags = reverse("admin:flagapp_flag_changelist")
        self.tail = escape(f"/environments/{quote(environment.key, safe='')}/toggle/")
        self.base = escape(flags)
        extra = {"next": next_url} if next_url else {}
        self.query = {
            on: escape("?" + urlencode({"enabled": "1" if on else "0", **extra}))
            for on in (True, False)
        }
        self.key = escape(environment.key)

    def link(self, flag: Flag, enabled_now: bool) -> str:
        target = not enabled_now
        proposes = needs_approval(flag, self.environment, target)
        word = "on" if target else "off"
        if self.short:
            label = f"propose turn {word}…" if proposes else f"turn {word}…"
        elif proposes:
            label = f"Propose turning {word} in {self.key}…"
        else:
            label = f"Turn {word} in {self.key}…"
        submit = f"{'Propose turning' if proposes else 'Turn'} {word} in {self.key}"
        title = f"Why turn {word} {escape(flag.key)} in {self.key}?" + (
            " (creates a change request)" if proposes else ""
        )
        return mark_safe(
            f'<a class="flagapp-toggle flagapp-toggle-{word}" '
            f'href="{self.base}{int(flag.pk)}{self.tail}{self.query[target]}" '
            f'title="{title}" data-submit="{submit}" id="toggle-{self.key}-{int(flag.pk)}">'
            f"{label}</a>"
        )


# --- the toggle ------------------------------------------------------------------------------


class ToggleForm(forms.Form):
    enabled = forms.TypedChoiceField(
        choices=[("1", "on"), ("0", "off")],
        coerce=lambda v: v == "1",
        widget=forms.HiddenInput,
    )
    next = forms.CharField(required=False, widget=forms.HiddenInput)
    reason = reason_field()


def _safe_next(request: HttpRequest, candidate: str, default: str) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def toggle_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: int, env_key: str
) -> HttpResponse:
    """Turn a flag on or off in one environment, with a reason (see the module docstring).

    GET: the confirmation page (``?enabled=0|1``, default: the opposite of now). POST:
    ``services.set_flag_enabled``; a change the policy holds for approval becomes a change
    request (``governance.change_requests.propose_from``); then back to ``next``.
    """
    flag = get_object_or_404(Flag, pk=object_id)
    env = get_object_or_404(Environment, key=env_key)
    user: Any = request.user
    if not model_admin.has_view_or_change_permission(request, flag) or not user.has_perm(
        CHANGE_STATE
    ):
        raise PermissionDenied
    state = FlagState.objects.filter(flag=flag, environment=env).first()
    enabled_now = bool(state and state.enabled)
    flag_page = reverse("admin:flagapp_flag_change", args=[flag.pk])
    data = request.POST if request.method == "POST" else None
    form = ToggleForm(
        data,
        initial={
            "enabled": request.GET.get("enabled", "0" if enabled_now else "1"),
            "next": request.GET.get("next", ""),
        },
    )
    if data is not None and form.is_valid():
        target: bool = form.cleaned_data["enabled"]
        reason: str = form.cleaned_data["reason"]
        back = _safe_next(request, form.cleaned_data["next"], flag_page)
        verb = "on" if target else "off"
        try:
            with transaction.atomic():
                services.set_flag_enabled(flag, env, target, actor=user, reason=reason)
        except ApprovalRequired as exc:
            created = _propose(request, exc, flag, env, verb, reason, form)
            if created:
                return HttpResponseRedirect(back)
        except FlagappError as exc:
            for msgs in messages_of(exc).values():
                for msg in msgs:
                    form.add_error(None, msg)
        else:
            action = "Kill switch" if not target else "Turned on"
            model_admin.log_change(request, flag, f"{action} in {env.key}. Reason: {reason}")
            messages.success(request, f"Turned {verb} {flag.key} in {env.key}.")
            return HttpResponseRedirect(back)
    target_now = form["enabled"].value() in ("1", True)
    allowed = can_toggle(user, env) and not flag.archived
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Turn {flag.key} {'on' if target_now else 'off'} in {env.key}",
        "opts": Flag._meta,
        "flag": flag,
        "environment": env,
        "state": state,
        "enabled_now": enabled_now,
        "target": target_now,
        "proposes": needs_approval(flag, env, target_now),
        "kill_bypass": not target_now and requires_approval(flag, env),
        "allowed": allowed,
        "radius": _radius(flag, env) if allowed and target_now and not enabled_now else None,
        "form": form,
        "cancel_url": _safe_next(request, str(form["next"].value() or ""), flag_page),
    }
    return TemplateResponse(request, "admin/flagapp/flag/toggle.html", context)


def _radius(flag: Flag, env: Environment) -> str:
    """What turning ``flag`` on in ``env`` would change for the recent evaluation contexts
    (the blast radius a flag-page save shows before it is applied), in words. Turning off
    is the kill switch: not previewed, an emergency does not wait."""
    from flagapp.governance import change_requests as crs
    from flagapp.models import ContextSample

    if not ContextSample.objects.filter(environment=env).exists():
        return "unknown: no recent evaluation contexts sampled in this environment"
    change = {
        "operation": "set_flag_enabled",
        "flag": flag.key,
        "environment": env.key,
        "params": {"enabled": True},
    }
    try:
        radius = crs.preview(change)
    except FlagappError as exc:
        return f"not computed ({exc})"
    return radius.summary() if radius is not None else "not computed"


def _propose(
    request: HttpRequest,
    exc: ApprovalRequired,
    flag: Flag,
    env: Environment,
    verb: str,
    reason: str,
    form: forms.Form,
) -> bool:
    """Nothing was changed: hold the change in a change request and say where it is."""
    from flagapp.governance import change_requests as crs

    try:
        cr = crs.propose_from(exc, author=request.user, reason=reason)
    except DuplicateChangeRequest as dup:
        url = reverse("admin:flagapp_changerequest_change", args=[dup.existing_id])
        messages.warning(
            request,
            format_html(
                "Nothing was changed: turning {} {} in {} is already waiting for review as "
                '<a href="{}" id="cr-duplicate">change request #{}</a>.',
                flag.key, verb, env.key, url, dup.existing_id,
            ),
        )  # fmt: skip
        return True
    except FlagappError as err:
        form.add_error(None, f"This change needs an approved change request: {err}")
        return False
    url = reverse("admin:flagapp_changerequest_change", args=[cr.pk])
    messages.info(
        request,
        format_html(
            "Nothing was changed yet: {} needs approval. "
            '<a href="{}" id="cr-created">Change request #{}</a> (turn {} {}) waits for review.',
            env.key, url, cr.pk, flag.key, verb,
        ),
    )  # fmt: skip
    return True
