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
- the on/off toggle of each card and list column (:mod:`flagapp.admin.toggle`:
  :func:`~flagapp.admin.toggle.toggle_view`, through ``services.set_flag_enabled``, a
  change request where the policy asks for approval; re-exported here).
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

from django.contrib import admin
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from flagapp.governance.change_requests import describe_operation
from flagapp.models import (
    ChangeRequest,
    Environment,
    Flag,
    FlagEvaluationStat,
    FlagState,
)
from flagapp.policy import requires_approval

from .toggle import ToggleForm, Toggles, can_toggle, needs_approval, toggle_view
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

_OPEN = (ChangeRequest.STATUS_PENDING, ChangeRequest.STATUS_APPROVED)


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
