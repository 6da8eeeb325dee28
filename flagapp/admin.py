"""The Django admin of flagapp: every save goes through :mod:`flagapp.services`.

Why the admin does not save models itself: the services are the one write path (validation
by the engine's parser, governance, version check, history with a reason, publishing). The
admin collects the form and inline data, and during validation — inside the admin's own
transaction, in a savepoint — applies it with the services. A refusal becomes form errors
on the right field (and the savepoint is rolled back), so bad input is shown like any other
validation error, never as a server error. ``save_model`` / ``save_related`` then have
nothing left to do.

Deleting flags is not offered here (a deletion leaves a tombstone and needs a reason);
archive them instead, or use ``services.delete_flag``. History is read-only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model, Prefetch, QuerySet
from django.forms import Media
from django.forms.utils import ErrorList
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from flagapp import services
from flagapp.exceptions import (
    ApprovalRequired,
    ChangeNotPermitted,
    FlagValidationError,
    VersionConflict,
)
from flagapp.forms import (
    EnvironmentForm,
    FlagForm,
    FlagStateForm,
    FlagStateInlineForm,
    ReasonForm,
    RuleForm,
    SegmentForm,
    VariantForm,
    parse_value,
)
from flagapp.models import (
    Environment,
    Flag,
    FlagState,
    Segment,
    Snapshot,
    TargetingRule,
    Variant,
)

_SERVICE_ERRORS = (FlagValidationError, VersionConflict, ApprovalRequired, ChangeNotPermitted)


class _Targeted(Exception):
    """A service error and the form whose fields should show it."""

    def __init__(
        self,
        exc: Exception,
        form: forms.BaseForm,
        label: str = "",
        aliases: dict[str, str] | None = None,
    ) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.form = form
        self.label = label
        self.aliases = aliases or {}


def _messages_of(exc: Exception) -> dict[str, list[str]]:
    if isinstance(exc, FlagValidationError):
        return exc.message_dict
    if isinstance(exc, VersionConflict):
        return {
            "__all__": [
                f"Someone else changed this since you opened the page (now version "
                f"{exc.current_version}). Reload the page; nothing was saved."
            ]
        }
    if isinstance(exc, ApprovalRequired):
        return {
            "__all__": [
                "This change needs an approved change request (high-risk flag or protected "
                "environment). Propose it as a change request; nothing was saved."
            ]
        }
    return {"__all__": [str(exc) or "You may not make this change."]}


def attach_errors(
    form: forms.BaseForm,
    exc: Exception,
    label: str = "",
    aliases: dict[str, str] | None = None,
) -> None:
    """Show a service error on ``form``: messages keyed by a field of the form go to that
    field, the rest to the form's non-field errors (prefixed with the field name)."""
    for service_field, msgs in _messages_of(exc).items():
        field = (aliases or {}).get(service_field, service_field)
        for msg in msgs:
            text = f"{label}{msg}"
            if field in form.fields and field in getattr(form, "cleaned_data", {}):
                form.add_error(field, text)
            elif field in form.fields:
                form.errors.setdefault(field, form.error_class()).append(text)
            elif field == "__all__":
                form.add_error(None, text)
            else:
                form.add_error(None, f"{field}: {text}")


class _ServiceStep:
    """A pseudo-formset appended to the admin's formsets: ``all_valid`` validates it last,
    after the form and the real inlines, and that is where the services run."""

    prefix = "flagapp-service-step"
    forms: list[Any] = []
    new_objects: list[Any] = []
    changed_objects: list[Any] = []
    deleted_objects: list[Any] = []
    errors: list[Any] = []
    media = Media()

    def __init__(
        self,
        model_admin: ServiceAdminMixin,
        request: HttpRequest,
        obj: Model | None,
        change: bool,
        formsets: Sequence[Any],
    ) -> None:
        self.model_admin = model_admin
        self.request = request
        self.obj = obj
        self.change = change
        self.formsets = list(formsets)

    def non_form_errors(self) -> ErrorList:
        return ErrorList()

    def is_valid(self) -> bool:
        form = getattr(self.request, "_flagapp_form", None)
        if form is None:
            return False
        if not form.is_valid() or not all(fs.is_valid() for fs in self.formsets):
            return True  # Django shows the form errors; nothing to apply
        sid = transaction.savepoint()
        try:
            saved = self.model_admin.apply(self.request, form, self.formsets, self.obj, self.change)
        except _Targeted as exc:
            transaction.savepoint_rollback(sid)
            if isinstance(exc.exc, ApprovalRequired):
                return _propose(self.request, exc.exc, form)
            attach_errors(exc.form, exc.exc, exc.label, exc.aliases)
            if exc.form is not form:
                form.add_error(None, "Nothing was saved: see the errors below.")
            return False
        except _SERVICE_ERRORS as exc:
            transaction.savepoint_rollback(sid)
            if isinstance(exc, ApprovalRequired):
                return _propose(self.request, exc, form)
            attach_errors(form, exc)
            return False
        if not _confirmed(self.request, form, saved):
            transaction.savepoint_rollback(sid)
            return False
        transaction.savepoint_commit(sid)
        self.request._flagapp_saved = saved  # type: ignore[attr-defined]
        return True


def _propose(request: HttpRequest, exc: ApprovalRequired, form: Any) -> bool:
    """Nothing was saved; a change request now holds the change (flagapp.admin_governance)."""
    from flagapp.admin_governance import propose_from_admin

    propose_from_admin(request, exc, form)
    return False


def _confirmed(request: HttpRequest, form: Any, saved: Any) -> bool:
    """A change that moves users is shown with its blast radius before it is committed
    (flagapp.admin_governance.confirm_blast_radius)."""
    from flagapp.admin_governance import confirm_blast_radius

    return confirm_blast_radius(request, form, saved)


class ServiceAdminMixin:
    """Admin saves through the services (see the module docstring). Subclasses implement
    :meth:`apply`."""

    save_as = False

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]

        class RequestBoundForm(form_class):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, **kw)
                request._flagapp_form = self  # type: ignore[attr-defined]

        RequestBoundForm.__name__ = form_class.__name__
        return RequestBoundForm

    def _create_formsets(self, request: HttpRequest, obj: Any, change: bool) -> Any:
        formsets, inline_instances = super()._create_formsets(request, obj, change)  # type: ignore[misc]
        if request.method == "POST":
            formsets.append(_ServiceStep(self, request, obj, change, formsets))
        return formsets, inline_instances

    def apply(
        self, request: HttpRequest, form: Any, formsets: Sequence[Any], obj: Any, change: bool
    ) -> Model:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        saved = getattr(request, "_flagapp_saved", None)
        if saved is not None and not change:
            obj.pk = saved.pk
            obj._state.adding = False
            obj._state.db = saved._state.db

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Already saved by the services."""

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> str:
        changed = [f for f in form.changed_data if f != "reason"]
        prefix = "Added" if add else ("Changed " + ", ".join(changed) if changed else "Saved")
        return f"{prefix}. Reason: {form.cleaned_data.get('reason', '')}"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # read-only history (SimpleHistoryAdmin)
    history_list_display = ["history_change_reason"]

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if request.method == "POST":
            raise PermissionDenied("history is read-only")
        return super().history_form_view(request, object_id, version_id, extra_context)  # type: ignore[misc]


def _reason_action(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    title: str,
    explanation: str,
    submit_label: str,
    perform: Callable[[Any, str], str | None],
) -> TemplateResponse | None:
    """An admin action that asks for a reason on an intermediate page, then runs
    ``perform(obj, reason)`` per object (returning an error message or None)."""
    form = ReasonForm(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        reason = form.cleaned_data["reason"]
        done = 0
        for obj in queryset:
            error = perform(obj, reason)
            if error:
                model_admin.message_user(request, f"{obj}: {error}", messages.ERROR)
            else:
                done += 1
        if done:
            model_admin.message_user(request, f"{title}: {done} done.", messages.SUCCESS)
        return None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "explanation": explanation,
        "queryset": queryset,
        "form": form,
        "action": action,
        "submit_label": submit_label,
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/flagapp/reason_action.html", context)


# --- flags -----------------------------------------------------------------------------------


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


class VariantInline(admin.TabularInline):
    model = Variant
    form = VariantForm
    extra = 1
    fields = ["key", "value", "description", "order"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj)

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 2 if obj is None else 1


class FlagStateInline(admin.StackedInline):
    model = FlagState
    form = FlagStateInlineForm
    extra = 0
    can_delete = False
    fields = [
        "environment_name",
        "enabled",
        "fallthrough",
        "prerequisites",
        "rules_text",
        "rules_page",
        "version",
    ]
    readonly_fields = ["environment_name", "rules_page"]
    verbose_name = "state in an environment"
    verbose_name_plural = "state per environment"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .select_related("environment")
            .prefetch_related("rules")
            .order_by("environment__order", "environment__key")
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("flagapp.change_flagstate"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("flagapp.view_flagstate")) or self.has_change_permission(
            request, obj
        )

    @admin.display(description="environment")
    def environment_name(self, obj: FlagState) -> str:
        env = obj.environment
        return f"{env.name} ({env.key}){' — protected' if env.protected else ''}"

    @admin.display(description="rules")
    def rules_text(self, obj: FlagState) -> str:
        """Read-only display (view permission only)."""
        from flagapp.forms import format_rules

        return format_rules([(r.rule_id, r.conditions, r.serve) for r in obj.rules.all()])

    @admin.display(description="rules page")
    def rules_page(self, obj: FlagState) -> str:
        if not obj.pk:
            return "-"
        url = reverse("admin:flagapp_flagstate_change", args=[obj.pk])
        return format_html(
            '<a href="{}">Edit the rules of {} one by one (with descriptions)</a>',
            url,
            obj.environment.key,
        )


_CHANGE = {"+": "created", "~": "changed", "-": "deleted"}


def _related_history(flag_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """History rows of a flag's variants, states and rules, newest first."""
    try:
        pk = int(flag_id)
    except (TypeError, ValueError):
        return []
    rows: list[dict[str, Any]] = []
    for h in Variant.history.filter(flag_id=pk).select_related("history_user")[:limit]:
        rows.append(
            {
                "when": h.history_date,
                "what": f"variant {h.key} = {h.value!r}",
                "change": _CHANGE.get(h.history_type, h.history_type),
                "user": h.history_user,
                "reason": h.history_change_reason,
            }
        )
    env_keys = dict(Environment.objects.values_list("pk", "key"))
    # state id -> environment key, from the history so deleted states still resolve
    states = {
        state_id: env_keys.get(env_id, "?")
        for state_id, env_id in FlagState.history.filter(flag_id=pk).values_list(
            "id", "environment_id"
        )
    }
    for h in FlagState.history.filter(flag_id=pk).select_related("history_user")[:limit]:
        env = env_keys.get(h.environment_id, h.environment_id)
        rows.append(
            {
                "when": h.history_date,
                "what": f"{env}: {'on' if h.enabled else 'off'}, v{h.version}",
                "change": _CHANGE.get(h.history_type, h.history_type),
                "user": h.history_user,
                "reason": h.history_change_reason,
            }
        )
    for h in TargetingRule.history.filter(state_id__in=list(states)).select_related("history_user")[
        :limit
    ]:
        env = states.get(h.state_id, "?")
        rows.append(
            {
                "when": h.history_date,
                "what": f"{env}: rule {h.rule_id}",
                "change": _CHANGE.get(h.history_type, h.history_type),
                "user": h.history_user,
                "reason": h.history_change_reason,
            }
        )
    rows.sort(key=lambda r: r["when"], reverse=True)
    return rows[:limit]


@admin.register(Flag)
class FlagAdmin(ServiceAdminMixin, SimpleHistoryAdmin):
    form = FlagForm
    inlines = [VariantInline, FlagStateInline]
    list_display = ["key", "name", "owner", "flag_type", "risk", "expiry", "archived"]
    list_filter = ["owner", "flag_type", ExpiredFilter, "archived", "risk", "kind"]
    search_fields = ["key", "name", "description"]
    list_select_related = ["owner"]
    ordering = ["key"]
    fieldsets = [
        (None, {"fields": ["key", "name", "description", "kind"]}),
        (
            "Governance",
            {"fields": ["flag_type", "owner", "risk", "expires_on", "tags", "archived"]},
        ),
        ("Why", {"fields": ["reason"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["key", "kind"] if obj is not None else []

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None:
            return self.fieldsets
        # A new flag is never archived: leave the box out of the add page.
        return [
            (name, {**opts, "fields": [f for f in opts["fields"] if f != "archived"]})
            for name, opts in self.fieldsets
        ]

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return [VariantInline] if obj is None else [VariantInline, FlagStateInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("states", queryset=FlagState.objects.select_related("environment"))
            )
        )

    object_history_template = "admin/flagapp/flag/object_history.html"

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        """The flag's own history, plus its variants', states' and rules' (read-only): a
        kill switch or a rule change is part of the flag's story."""
        context = {**(extra_context or {}), "related_history": _related_history(object_id)}
        return super().history_view(request, object_id, extra_context=context)

    # list: one on/off column per environment ----------------------------------------------

    def _environments(self, request: HttpRequest) -> list[Environment]:
        cached = getattr(request, "_flagapp_envs", None)
        if cached is None:
            cached = list(Environment.objects.order_by("order", "key"))
            request._flagapp_envs = cached  # type: ignore[attr-defined]
        return cached

    def get_list_display(self, request: HttpRequest) -> Any:
        columns: list[Any] = ["key", "name"]
        for env in self._environments(request):
            columns.append(self._env_column(env))
        return [*columns, "owner", "flag_type", "risk", "expiry", "archived"]

    @staticmethod
    def _env_column(env: Environment) -> Callable[[Flag], bool | None]:
        def column(flag: Flag) -> bool | None:
            for state in flag.states.all():
                if state.environment_id == env.pk:
                    return state.enabled
            return None

        column.__name__ = f"env_{re.sub(r'[^a-z0-9_]', '_', env.key)}"
        return admin.display(description=env.key, boolean=True)(column)

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
        actions = super().get_actions(request)
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
                FlagAdmin.archive_flags,
                "archive_flags",
                "Archive selected flags",
            )
        return actions

    def _kill_action(self, env: Environment, name: str) -> Callable[..., Any]:
        def kill(modeladmin: FlagAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
            def perform(flag: Flag, reason: str) -> str | None:
                try:
                    services.set_flag_enabled(flag, env, False, actor=request.user, reason=reason)
                except _SERVICE_ERRORS as exc:
                    return " ".join(m for ms in _messages_of(exc).values() for m in ms)
                modeladmin.log_change(request, flag, f"Kill switch in {env.key}. Reason: {reason}")
                return None

            return _reason_action(
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
    def archive_flags(modeladmin: FlagAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        def perform(flag: Flag, reason: str) -> str | None:
            try:
                services.archive_flag(flag, actor=request.user, reason=reason)
            except _SERVICE_ERRORS as exc:
                return " ".join(m for ms in _messages_of(exc).values() for m in ms)
            modeladmin.log_change(request, flag, f"Archived. Reason: {reason}")
            return None

        return _reason_action(
            modeladmin,
            request,
            queryset,
            action="archive_flags",
            title="Archive flags",
            explanation="Archived flags leave every snapshot: callers get their default "
            "(FLAG_NOT_FOUND).",
            submit_label="Archive",
            perform=perform,
        )

    # saving through the services ------------------------------------------------------------

    def apply(
        self, request: HttpRequest, form: Any, formsets: Sequence[Any], obj: Any, change: bool
    ) -> Model:
        cd = form.cleaned_data
        actor, reason = request.user, cd["reason"]
        variant_fs = next((fs for fs in formsets if getattr(fs, "model", None) is Variant), None)
        state_fs = next((fs for fs in formsets if getattr(fs, "model", None) is FlagState), None)
        kind = obj.kind if change else cd["kind"]
        variants = self._variants(variant_fs, kind)
        if not change:
            try:
                return services.create_flag(
                    key=cd["key"],
                    name=cd["name"],
                    description=cd.get("description", ""),
                    kind=kind,
                    flag_type=cd["flag_type"],
                    owner=cd["owner"],
                    risk=cd["risk"],
                    expires_on=cd.get("expires_on"),
                    tags=cd.get("tags") or [],
                    variants=[v for v, _ in variants] or None,
                    actor=actor,
                    reason=reason,
                )
            except FlagValidationError as exc:
                self._route_variant_errors(exc, variant_fs, form)
                raise
        flag = Flag.objects.get(pk=obj.pk)
        archived = cd.get("archived", flag.archived)
        if flag.archived and not archived:
            services.unarchive_flag(flag, actor=actor, reason=reason)
        services.update_flag(
            flag,
            name=cd["name"],
            description=cd.get("description", ""),
            flag_type=cd["flag_type"],
            owner=cd["owner"],
            risk=cd["risk"],
            expires_on=cd.get("expires_on"),
            tags=cd.get("tags") or [],
            actor=actor,
            reason=reason,
        )
        changed_states = self._changed_states(state_fs)
        new_items = [v for v, _ in variants]
        old = list(flag.variants.order_by("order", "key"))
        new_keys = {v["key"] for v in new_items}
        removed = [
            {"key": v.key, "value": v.value, "description": v.description}
            for v in old
            if v.key not in new_keys
        ]
        try:
            if variant_fs is not None and removed and changed_states:
                # Keep removed variants until the states stop using them.
                services.set_variants(flag, new_items + removed, actor=actor, reason=reason)
            elif variant_fs is not None:
                services.set_variants(flag, new_items, actor=actor, reason=reason)
        except FlagValidationError as exc:
            self._route_variant_errors(exc, variant_fs, form)
            raise
        for state_form, state in changed_states:
            state_cd = state_form.cleaned_data
            kwargs: dict[str, Any] = {}
            if "rules_text" in state_cd:
                # The one-line syntax has no descriptions: keep them by rule id.
                described = dict(state.rules.values_list("rule_id", "description"))
                kwargs["rules"] = [
                    {**rule, "description": described.get(rule["id"] or "", "")}
                    for rule in state_cd["rules_text"]
                ]
            try:
                services.update_flag_state(
                    flag,
                    state.environment,
                    actor=actor,
                    reason=reason,
                    enabled=state_cd["enabled"],
                    fallthrough=state_cd["fallthrough"],
                    prerequisites=state_cd["prerequisites"],
                    **kwargs,
                )
            except _SERVICE_ERRORS as exc:
                raise _Targeted(
                    exc, state_form, f"{state.environment.key}: ", {"rules": "rules_text"}
                ) from None
        if variant_fs is not None and removed and changed_states:
            try:
                services.set_variants(flag, new_items, actor=actor, reason=reason)
            except FlagValidationError as exc:
                self._route_variant_errors(exc, variant_fs, form)
                raise
        if archived and not flag.archived:
            services.archive_flag(flag, actor=actor, reason=reason)
        return flag

    @staticmethod
    def _variants(variant_fs: Any, kind: str) -> list[tuple[dict[str, Any], Any]]:
        if variant_fs is None:
            return []
        rows = []
        for index, vform in enumerate(variant_fs.forms):
            vcd = getattr(vform, "cleaned_data", None) or {}
            if not vcd or vcd.get("DELETE") or not vcd.get("key"):
                continue
            try:
                value = parse_value(kind, vcd.get("value", ""))
            except ValidationError as exc:
                raise _Targeted(FlagValidationError({"value": exc.messages}), vform) from None
            order = vcd.get("order")
            rows.append((order if order is not None else index, index, vcd, value, vform))
        rows.sort(key=lambda r: (r[0], r[1]))
        return [
            (
                {"key": vcd["key"], "value": value, "description": vcd.get("description") or ""},
                vform,
            )
            for _, _, vcd, value, vform in rows
        ]

    @staticmethod
    def _changed_states(state_fs: Any) -> list[tuple[Any, FlagState]]:
        """State forms whose values differ from the stored state, after checking each was
        edited from the current version (locked until the end of the request)."""
        if state_fs is None:
            return []
        out = []
        for sform in state_fs.forms:
            if not sform.has_changed() or sform.instance.pk is None:
                continue
            current = (
                FlagState.objects.select_for_update()
                .select_related("environment")
                .get(pk=sform.instance.pk)
            )
            expected = sform.cleaned_data.get("version")
            if expected is not None and expected != current.version:
                raise _Targeted(
                    VersionConflict(current.version, expected),
                    sform,
                    f"{current.environment.key}: ",
                )
            out.append((sform, current))
        return out

    @staticmethod
    def _route_variant_errors(exc: FlagValidationError, variant_fs: Any, form: Any) -> None:
        """Variant errors (field ``variants`` in the services) go to the variants table."""
        if variant_fs is None:
            return
        errors = exc.error_dict.pop("variants", None)
        if not errors:
            return
        texts = [text for err in errors for text in err.messages]
        variant_fs._non_form_errors = variant_fs.error_class(
            [*variant_fs.non_form_errors(), *texts], error_class="nonform"
        )
        if not exc.error_dict:
            exc.error_dict["__all__"] = [ValidationError("See the variants below.")]


# --- per-environment state with ordered rules -------------------------------------------------


class RuleInline(admin.TabularInline):
    model = TargetingRule
    form = RuleForm
    extra = 1
    fields = ["order", "rule_id", "description", "conditions", "serve"]
    ordering = ["order", "id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("flagapp.change_flagstate"))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("flagapp.change_flagstate"))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("flagapp.change_flagstate"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("flagapp.view_flagstate")) or self.has_change_permission(
            request, obj
        )


@admin.register(FlagState)
class FlagStateAdmin(ServiceAdminMixin, SimpleHistoryAdmin):
    """One flag in one environment: on/off, fallthrough, prerequisites and ordered rules.
    Reached from the flag's page; not listed on the admin index."""

    form = FlagStateForm
    inlines = [RuleInline]
    list_display = ["flag", "environment", "enabled", "version"]
    list_filter = ["environment", "enabled"]
    search_fields = ["flag__key"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "flag_link",
                    "environment",
                    "enabled",
                    "fallthrough",
                    "prerequisites",
                    "version",
                ]
            },
        ),
        ("Why", {"fields": ["reason"]}),
    ]
    readonly_fields = ["flag_link", "environment"]

    def get_model_perms(self, request: HttpRequest) -> dict[str, bool]:
        return {}  # edited from the flag page

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="flag")
    def flag_link(self, obj: FlagState) -> str:
        url = reverse("admin:flagapp_flag_change", args=[obj.flag_id])
        return format_html('<a href="{}">{}</a> ({})', url, obj.flag.key, obj.flag.kind)

    def apply(
        self, request: HttpRequest, form: Any, formsets: Sequence[Any], obj: Any, change: bool
    ) -> Model:
        cd = form.cleaned_data
        rule_fs = next(fs for fs in formsets if getattr(fs, "model", None) is TargetingRule)
        rows = []
        for index, rform in enumerate(rule_fs.forms):
            rcd = getattr(rform, "cleaned_data", None) or {}
            if not rcd or rcd.get("DELETE") or rcd.get("serve") is None:
                continue
            order = rcd.get("order")
            rows.append(((order if order is not None else index, index), rform, rcd))
        rows.sort(key=lambda r: r[0])
        rules = [
            {
                "id": rcd.get("rule_id") or None,
                "description": rcd.get("description") or "",
                "when": rcd.get("conditions") or [],
                "serve": rcd["serve"],
            }
            for _, _, rcd in rows
        ]
        state = FlagState.objects.select_related("flag", "environment").get(pk=obj.pk)
        try:
            return services.update_flag_state(
                state.flag,
                state.environment,
                actor=request.user,
                reason=cd["reason"],
                expected_version=cd.get("version"),
                enabled=cd["enabled"],
                fallthrough=cd["fallthrough"],
                prerequisites=cd["prerequisites"],
                rules=rules,
            )
        except FlagValidationError as exc:
            self._route_rule_errors(exc, [r[1] for r in rows], rule_fs)
            raise

    @staticmethod
    def _route_rule_errors(exc: FlagValidationError, rule_forms: list[Any], rule_fs: Any) -> None:
        """``rules[i].when...`` -> the i-th rule's conditions, ``.serve`` -> its serve."""
        msgs = exc.error_dict.pop("rules", None)
        if not msgs:
            return
        rest = []
        for err in msgs:
            for text in err.messages:
                m = re.match(r"^rules\[(\d+)\]\.(\w+)", text)
                if m and int(m.group(1)) < len(rule_forms):
                    fields = {"when": "conditions", "serve": "serve", "id": "rule_id"}
                    field = fields.get(m.group(2))
                    rule_forms[int(m.group(1))].add_error(field, text)
                else:
                    rest.append(text)
        if rest:
            rule_fs._non_form_errors = rule_fs.error_class(
                [*rule_fs.non_form_errors(), *rest], error_class="nonform"
            )
        if not exc.error_dict:
            exc.error_dict["__all__"] = [ValidationError("See the rules below.")]


# --- segments, environments, snapshots ---------------------------------------------------------


@admin.register(Segment)
class SegmentAdmin(ServiceAdminMixin, SimpleHistoryAdmin):
    form = SegmentForm
    list_display = ["key", "name", "include_count", "exclude_count", "updated_at"]
    search_fields = ["key", "name", "description"]
    fieldsets = [
        (None, {"fields": ["key", "name", "description", "include", "exclude", "conditions"]}),
        ("Why", {"fields": ["reason"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["key"] if obj is not None else []

    @admin.display(description="included")
    def include_count(self, obj: Segment) -> int:
        return len(obj.include or [])

    @admin.display(description="excluded")
    def exclude_count(self, obj: Segment) -> int:
        return len(obj.exclude or [])

    def apply(
        self, request: HttpRequest, form: Any, formsets: Sequence[Any], obj: Any, change: bool
    ) -> Model:
        cd = form.cleaned_data
        fields = {k: cd.get(k) for k in ("name", "description", "include", "exclude", "conditions")}
        if not change:
            return services.create_segment(
                key=cd["key"], actor=request.user, reason=cd["reason"], **fields
            )
        segment = Segment.objects.get(pk=obj.pk)
        return services.update_segment(segment, actor=request.user, reason=cd["reason"], **fields)


@admin.register(Environment)
class EnvironmentAdmin(ServiceAdminMixin, SimpleHistoryAdmin):
    form = EnvironmentForm
    list_display = ["key", "name", "protected", "order", "latest_snapshot"]
    ordering = ["order", "key"]
    fieldsets = [
        (None, {"fields": ["key", "name", "protected", "order"]}),
        ("Why", {"fields": ["reason"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["key"] if obj is not None else []

    @admin.display(description="latest snapshot")
    def latest_snapshot(self, env: Environment) -> str:
        snap = env.snapshots.order_by("-version").first()
        return f"v{snap.version} ({snap.created_at:%Y-%m-%d %H:%M})" if snap else "-"

    def apply(
        self, request: HttpRequest, form: Any, formsets: Sequence[Any], obj: Any, change: bool
    ) -> Model:
        cd = form.cleaned_data
        if not change:
            return services.create_environment(
                key=cd["key"],
                name=cd["name"],
                protected=cd["protected"],
                order=cd["order"],
                actor=request.user,
                reason=cd["reason"],
            )
        env = Environment.objects.get(pk=obj.pk)
        return services.update_environment(
            env,
            name=cd["name"],
            protected=cd["protected"],
            order=cd["order"],
            actor=request.user,
            reason=cd["reason"],
        )


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    """Published snapshots, read-only: what every evaluator was served."""

    list_display = ["environment", "version", "etag", "created_at"]
    list_filter = ["environment"]
    fields = ["environment", "version", "etag", "created_at", "pretty_document"]
    readonly_fields = ["environment", "version", "etag", "created_at", "pretty_document"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="document")
    def pretty_document(self, obj: Snapshot) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, ensure_ascii=False))


# Rollouts and experiments register their own ModelAdmins (owned by the rollout helper).
# Change requests (flagapp.admin_governance) register their review screens on import too.
from flagapp import (  # noqa: E402
    admin_governance,  # noqa: F401
    admin_rollouts,  # noqa: F401
    admin_tokens,  # noqa: F401
)
