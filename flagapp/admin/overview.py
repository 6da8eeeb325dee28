"""The flag page as a per-environment overview, the per-environment on/off toggle, and the
count of pending change requests on the admin index (issue 13 parts 1 and 3).

Why: a flag manager opening a flag asks, per environment, "is it on, who gets what, is a
change waiting, who touched it last and why, and is anybody still evaluating it?" — the
stock change form answers none of these at a glance. Here:

- :func:`environment_cards` builds one card per environment: enabled, what is served in
  words (rules, prerequisites and fallthrough with percentages, the wording of the
  timeline: :mod:`flagapp.admin.wording`), open change requests,
  the last change (who/when/why, from the state's history), the evaluation count and the
  last evaluation (``FlagEvaluationStat``: in-process evaluations, SDK exposures and
  evaluation counts, the provider's usage counts — the stale report's notion,
  :func:`flagapp.sampling.evaluation_totals`). A fixed number of queries whatever the
  number of environments.
- :func:`toggle_view` turns a flag on or off in one environment with a reason, through
  ``services.set_flag_enabled`` (the kill switch of the flag list's actions): where the
  policy asks for approval (turning on in a protected environment, any change of a
  high-risk flag but the kill switch) it creates a change request instead and says so.
  GET shows a small confirmation page (works without JavaScript); ``flagapp/overview.js``
  replaces the link by an inline reason prompt that POSTs to the same view.
- :class:`OverviewAdminMixin` mounts the above on the flag admin: the cards on the flag
  page, a toggle in each environment's column of the flag list, the "last evaluated"
  column (one aggregate query per page, attached by ``get_changelist_instance``).
- :func:`pending_change_requests` (template tag ``flagapp_pending_change_requests``) and
  :func:`use_index_template`: the admin index and the app page show how many change
  requests wait for review, linked to the filtered list.

The evaluation figures are as stored: a process folds its counts into the table at most
every ``SAMPLING_FLUSH_SECONDS`` and SDKs report every ``usage_interval``; a page view never
flushes (it stays a read).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from flagapp import services
from flagapp.exceptions import (
    ApprovalRequired,
    DuplicateChangeRequest,
    FlagappError,
)
from flagapp.governance.change_requests import describe_operation
from flagapp.models import (
    ChangeRequest,
    Environment,
    Flag,
    FlagEvaluationStat,
    FlagState,
)
from flagapp.policy import kill_switch_bypasses_approval, requires_approval

from .base import messages_of
from .forms import reason_field
from .wording import prerequisite_text, rule_text, serve_text

__all__ = [
    "EnvironmentCard",
    "OverviewAdminMixin",
    "ToggleForm",
    "can_toggle",
    "environment_cards",
    "pending_change_requests",
    "toggle_view",
    "use_index_template",
]

CHANGE_STATE = "flagapp.change_flagstate"
CHANGE_PROTECTED = "flagapp.change_protected_environment"
_OPEN = (ChangeRequest.STATUS_PENDING, ChangeRequest.STATUS_APPROVED)


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


# --- the cards -------------------------------------------------------------------------------


@dataclass
class EnvironmentCard:
    """What the flag page shows for one environment."""

    environment: Environment
    state: FlagState | None
    enabled: bool
    #: "what is served", each a sentence: prerequisites, rules in order, everyone else
    prerequisites: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    fallthrough: str = ""
    #: open change requests: ``{"cr", "what", "url"}``
    open_requests: list[dict[str, Any]] = field(default_factory=list)
    requests_url: str = ""
    #: the state's last history row: ``{"when", "user", "reason", "version"}`` or None
    last_change: dict[str, Any] | None = None
    evaluations: int = 0
    last_evaluated: dt.datetime | None = None
    toggle: str = ""
    toggle_note: str = ""
    timeline_url: str = ""
    rules_url: str = ""

    @property
    def evaluations_text(self) -> str:
        return f"{self.evaluations:,} evaluation{'s' if self.evaluations != 1 else ''}"

    @property
    def last_evaluated_ago(self) -> str:
        if self.last_evaluated is None:
            return ""
        if timezone.now() - self.last_evaluated < dt.timedelta(minutes=1):
            return "just now"
        return f"{timesince(self.last_evaluated)} ago"


def _environments(request: HttpRequest) -> list[Environment]:
    """The environments in page order, once per request (shared with the flag admin's
    list columns, same request attribute)."""
    cached = getattr(request, "_flagapp_envs", None)
    if cached is None:
        cached = list(Environment.objects.order_by("order", "key"))
        request._flagapp_envs = cached  # type: ignore[attr-defined]
    return list(cached)


def _last_changes(flag: Flag) -> dict[int, dict[str, Any]]:
    """environment id -> the newest history row of the flag's state there (one query: the
    newest ``history_id`` per state, by a subquery)."""
    newest = (
        FlagState.history.filter(flag_id=flag.pk)
        .values("id")
        .annotate(newest=Max("history_id"))
        .values("newest")
    )
    out: dict[int, dict[str, Any]] = {}
    for row in FlagState.history.filter(history_id__in=newest).select_related("history_user"):
        out[row.environment_id] = {
            "when": row.history_date,
            "user": row.history_user,
            "reason": row.history_change_reason or "",
            "version": row.version,
        }
    return out


def environment_cards(request: HttpRequest, flag: Flag) -> list[EnvironmentCard]:
    """One card per environment (see the module docstring); six queries whatever the
    number of environments (environments, states, their rules, open change requests, last
    changes, evaluation counts)."""
    envs = _environments(request)
    states = {
        s.environment_id: s for s in FlagState.objects.filter(flag=flag).prefetch_related("rules")
    }
    requests: dict[int | None, list[dict[str, Any]]] = {}
    for cr in (
        ChangeRequest.objects.filter(flag=flag, status__in=_OPEN)
        .select_related("author")
        .order_by("created_at", "id")
    ):
        requests.setdefault(cr.environment_id, []).append(
            {
                "cr": cr,
                "what": describe_operation(cr.kind, cr.payload),
                "url": reverse("admin:flagapp_changerequest_change", args=[cr.pk]),
            }
        )
    changes = _last_changes(flag)
    stats = {
        env_id: (count, last)
        for env_id, count, last in FlagEvaluationStat.objects.filter(flag_key=flag.key).values_list(
            "environment_id", "count", "last_evaluated_at"
        )
    }
    user: Any = request.user
    here = reverse("admin:flagapp_flag_change", args=[flag.pk])
    timeline = reverse("admin:flagapp_flag_timeline", args=[flag.pk])
    cr_list = reverse("admin:flagapp_changerequest_changelist")
    cards = []
    for env in envs:
        state = states.get(env.pk)
        enabled = bool(state and state.enabled)
        card = EnvironmentCard(environment=env, state=state, enabled=enabled)
        if state is not None:
            card.prerequisites = [prerequisite_text(p) for p in state.prerequisites or []]
            card.rules = [
                rule_text({"when": r.conditions, "serve": r.serve, "description": r.description})
                for r in state.rules.all()
            ]
            card.fallthrough = serve_text(state.fallthrough)
            card.rules_url = reverse("admin:flagapp_flagstate_change", args=[state.pk])
        card.open_requests = requests.get(env.pk, [])
        card.requests_url = f"{cr_list}?" + urlencode(
            {"status": "all", "flag_key": flag.key, "environment_key": env.key}
        )
        card.last_change = changes.get(env.pk)
        card.evaluations, card.last_evaluated = stats.get(env.pk, (0, None))
        card.timeline_url = f"{timeline}?{urlencode({'environment': env.key})}"
        if flag.archived:
            card.toggle_note = "Archived: unarchive the flag to change it."
        elif can_toggle(user, env):
            card.toggle = Toggles(env, here, short=False).link(flag, enabled)
            if needs_approval(flag, env, not enabled):
                card.toggle_note = "Needs approval here: a change request is created for review."
            elif enabled and requires_approval(flag, env):
                card.toggle_note = "Turning off needs no approval (kill switch)."
        cards.append(card)
    return cards


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


# --- the admin index -------------------------------------------------------------------------


def pending_change_requests(user: Any) -> dict[str, Any] | None:
    """``{"count", "url"}`` of the change requests waiting for review, for a user who may
    see them (None otherwise): one COUNT query."""
    from .playground import can_see_change_requests

    if not getattr(user, "is_authenticated", False) or not can_see_change_requests(user):
        return None
    count = ChangeRequest.objects.filter(status=ChangeRequest.STATUS_PENDING).count()
    url = reverse("admin:flagapp_changerequest_changelist") + "?status=pending"
    return {"count": count, "url": url}


INDEX_TEMPLATE = "admin/flagapp/index.html"


def use_index_template(site: admin.AdminSite) -> None:
    """Show the pending count on ``site``'s index, unless the project chose its own index
    template (it can add ``{% flagapp_pending_change_requests %}`` from
    ``flagapp_admin`` there)."""
    if site.index_template is None:
        site.index_template = INDEX_TEMPLATE


# --- the flag admin's hooks ------------------------------------------------------------------


class OverviewAdminMixin:
    """For the flag admin: cards on the flag page, toggles in the list, last evaluated."""

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view  # type: ignore[attr-defined]
        return [
            path(
                "<int:object_id>/environments/<str:env_key>/toggle/",
                view(self.toggle_view),
                name="flagapp_flag_toggle",
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def toggle_view(self, request: HttpRequest, object_id: int, env_key: str) -> HttpResponse:
        return toggle_view(self, request, object_id, env_key)  # type: ignore[arg-type]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        if request.method == "GET" and str(object_id).isdigit():
            flag = Flag.objects.filter(pk=int(object_id)).first()
            if flag is not None and self.has_view_or_change_permission(request, flag):  # type: ignore[attr-defined]
                context["environment_cards"] = environment_cards(request, flag)
        response: HttpResponse = super().change_view(  # type: ignore[misc]
            request, object_id, form_url, context
        )
        return response

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        """The page's flags get their evaluation totals: one aggregate query per page."""
        changelist = super().get_changelist_instance(request)  # type: ignore[misc]
        from flagapp import sampling

        page = list(changelist.result_list)
        totals = sampling.evaluation_totals(f.key for f in page)
        for flag in page:
            flag._flagapp_evaluations = totals.get(flag.key, (0, None))
        return changelist

    @admin.display(description="last evaluated")
    def last_evaluated(self, flag: Flag) -> str:
        count, last = getattr(flag, "_flagapp_evaluations", (0, None))
        if last is None:
            return format_html('<span class="{}">never</span>', "flagapp-never")
        return format_html(
            '<time datetime="{}" title="{} evaluations in all environments">{}</time>',
            last.isoformat(),
            f"{count:,}",
            last.strftime("%Y-%m-%d %H:%M"),
        )

    def environment_columns(
        self, request: HttpRequest, environments: Sequence[Environment]
    ) -> list[Callable[[Flag], str]]:
        """One column per environment: on/off icon and, for users who may change it, the
        toggle (back to this very list page afterwards)."""
        user: Any = request.user
        here = request.get_full_path()
        return [_env_column(env, can_toggle(user, env), here) for env in environments]


def _icon(value: bool | None) -> str:
    """The admin's own on/off/unknown icon (what ``boolean=True`` columns show)."""
    name = {True: "yes", False: "no", None: "unknown"}[value]
    return format_html('<img src="{}" alt="{}">', static(f"admin/img/icon-{name}.svg"), value)


def _env_column(env: Environment, can: bool, here: str) -> Callable[[Flag], str]:
    import re

    toggles = Toggles(env, here, short=True) if can else None
    icons = {value: _icon(value) for value in (True, False, None)}

    def column(flag: Flag) -> str:
        state = next((s for s in flag.states.all() if s.environment_id == env.pk), None)
        enabled = state.enabled if state is not None else None
        icon = icons[enabled]
        if toggles is None or flag.archived:
            return icon
        return mark_safe(
            f'<span class="flagapp-env-state">{icon} {toggles.link(flag, bool(enabled))}</span>'
        )

    column.__name__ = f"env_{re.sub(r'[^a-z0-9_]', '_', env.key)}"
    return admin.display(description=env.key)(column)
