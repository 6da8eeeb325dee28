"""The flag admin: the flag page (fields, variants, one state per environment as text),
saving it through ``services.save_flag``, and the flag's combined history; the list's
columns, filters and actions are :mod:`flagapp.admin.flag_list`'s. Deleting flags is not
offered (a deletion leaves a tombstone and needs a reason): archive them instead, or use
``services.delete_flag``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count, Model, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from flagapp import services
from flagapp.exceptions import (
    FlagValidationError,
)
from flagapp.models import (
    Environment,
    Flag,
    FlagState,
    TargetingRule,
    Variant,
)

from .base import (
    SERVICE_ERRORS,
    ServiceAdminMixin,
    _Targeted,
    readable,
)
from .editor import EditorURLs
from .flag_list import ExpiredFilter, FlagListMixin, PendingChangeFilter
from .forms import (
    FlagForm,
    FlagStateInlineForm,
    VariantForm,
)
from .history_pages import HistoryURLs
from .overview import OverviewAdminMixin
from .states import StateTextFields
from .syntax import format_value, parse_value


class VariantInline(admin.TabularInline):
    model = Variant
    form = VariantForm
    extra = 1
    fields = ["key", "value", "description", "order"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj)

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 2 if obj is None else 1

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("flag")  # labels, value_text

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if self.has_change_permission(request, obj):
            return self.fields
        return ["key", "value_text", "description", "order"]  # read-only: as typed

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["value_text"]

    @admin.display(description="value")
    def value_text(self, obj: Variant) -> str:
        """The value as the edit form spells it (``true``, not Python's ``True``)."""
        return format_value(obj.flag.kind, obj.value) if obj.pk else "-"


class FlagStateInline(StateTextFields, admin.StackedInline):
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
        "opened",
    ]
    readonly_fields = ["environment_name", "rules_page"]
    verbose_name = "state in an environment"
    verbose_name_plural = "state per environment"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .select_related("flag", "environment")
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

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if self.has_change_permission(request, obj):
            return self.fields
        # read-only: the text syntaxes the edit form shows, not stored JSON or a version
        return [
            "environment_name",
            "enabled",
            "fallthrough_text",
            "prerequisites_text",
            "rules_text",
            "rules_page",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if self.has_change_permission(request, obj):
            return self.readonly_fields
        return [*self.readonly_fields, "fallthrough_text", "prerequisites_text", "rules_text"]

    @admin.display(description="environment")
    def environment_name(self, obj: FlagState) -> str:
        env = obj.environment
        return f"{env.name} ({env.key}){' — protected' if env.protected else ''}"

    @admin.display(description="rules")
    def rules_text(self, obj: FlagState) -> str:
        """Read-only display (view permission only)."""
        from .syntax import format_rules

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
                "what": f"variant {h.key} = {readable(h.value)}",
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
class FlagAdmin(
    OverviewAdminMixin,
    FlagListMixin,
    EditorURLs,
    HistoryURLs,
    ServiceAdminMixin,
    SimpleHistoryAdmin,
):
    form = FlagForm
    inlines = [VariantInline, FlagStateInline]
    list_display = ["key", "name", "owner", "flag_type", "risk", "expiry", "archived"]
    list_filter = [
        "owner",
        "flag_type",
        ExpiredFilter,
        PendingChangeFilter,
        "archived",
        "risk",
        "kind",
    ]
    search_fields = ["key", "name", "description"]
    list_select_related = ["owner"]
    ordering = ["key"]
    fieldsets = [
        (None, {"fields": ["key", "name", "description", "kind", "version"]}),
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
            return self.without_reason(request, obj, self.fieldsets)
        # A new flag is never archived: leave the box out of the add page.
        return [
            (name, {**opts, "fields": [f for f in opts["fields"] if f != "archived"]})
            for name, opts in self.fieldsets
        ]

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return [VariantInline] if obj is None else [VariantInline, FlagStateInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        flags: QuerySet[Any] = (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("states", queryset=FlagState.objects.select_related("environment"))
            )
            .annotate(
                pending_count=Count(
                    "change_requests", filter=Q(change_requests__status="pending"), distinct=True
                )
            )
        )
        return flags

    object_history_template = "admin/flagapp/flag/object_history.html"

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The flag page with a banner for its open change requests: a change waiting for
        review must be visible where people edit the flag."""
        from flagapp.governance import change_requests as crs
        from flagapp.models import ChangeRequest

        waiting = []
        if str(object_id).isdigit():
            for cr in (
                ChangeRequest.objects.filter(
                    flag_id=int(object_id),
                    status__in=(ChangeRequest.STATUS_PENDING, ChangeRequest.STATUS_APPROVED),
                )
                .select_related("author")
                .order_by("created_at", "id")
            ):
                waiting.append(
                    {
                        "cr": cr,
                        "what": crs.describe_operation(cr.kind, cr.payload),
                        "url": reverse("admin:flagapp_changerequest_change", args=[cr.pk]),
                    }
                )
        context = {**(extra_context or {}), "open_change_requests": waiting}
        response: HttpResponse = super().change_view(request, object_id, form_url, context)
        return response

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        """The flag's own history, plus its variants', states' and rules' (read-only): a
        kill switch or a rule change is part of the flag's story."""
        context = {**(extra_context or {}), "related_history": _related_history(object_id)}
        response: HttpResponse = super().history_view(request, object_id, extra_context=context)
        return response

    # saving through the services ------------------------------------------------------------

    def apply(
        self, request: HttpRequest, form: Any, formsets: Sequence[Any], obj: Any, change: bool
    ) -> Model:
        """Collect the page (fields, variant rows, the state blocks the user edited) and
        save it with one service call, ``services.save_flag``; route its errors to the
        form, the variants table or the state block they are about."""
        cd = form.cleaned_data
        actor, reason = request.user, cd["reason"]
        variant_fs = next((fs for fs in formsets if getattr(fs, "model", None) is Variant), None)
        state_fs = next((fs for fs in formsets if getattr(fs, "model", None) is FlagState), None)
        kind = obj.kind if change else cd["kind"]
        items = [v for v, _ in self._variants(variant_fs, kind)]
        state_forms: dict[str, Any] = {}
        try:
            if not change:
                return services.save_flag(
                    None,
                    key=cd["key"],
                    name=cd["name"],
                    description=cd.get("description", ""),
                    kind=kind,
                    flag_type=cd["flag_type"],
                    owner=cd["owner"],
                    risk=cd["risk"],
                    expires_on=cd.get("expires_on"),
                    tags=cd.get("tags") or [],
                    variants=items or None,
                    actor=actor,
                    reason=reason,
                )
            # Only what the user changed: a field nobody touched must not overwrite (or be
            # refused over) a change someone else made since the page was opened.
            fields = {f: cd.get(f) for f in _FLAG_FIELDS if f in form.changed_data}
            if "tags" in fields:
                fields["tags"] = fields["tags"] or []
            extra: dict[str, Any] = {}
            if variant_fs is not None and variant_fs.has_changed():
                extra["variants"] = items
            if "archived" in form.changed_data:
                extra["archived"] = bool(cd.get("archived"))
            states = []
            for sform in self._edited_states(state_fs):
                env = sform.instance.environment
                state_forms[env.key] = sform
                states.append(_state_change(sform))
            return services.save_flag(
                Flag.objects.get(pk=obj.pk),
                actor=actor,
                reason=reason,
                expected_version=cd.get("version"),
                states=states,
                **extra,
                **fields,
            )
        except SERVICE_ERRORS as exc:
            env_key = getattr(exc, "environment", None)
            if env_key in state_forms:
                raise _Targeted(
                    exc, state_forms[env_key], f"{env_key}: ", {"rules": "rules_text"}
                ) from None
            if isinstance(exc, FlagValidationError):
                self._route_variant_errors(exc, variant_fs, form)
            raise

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
    def _edited_states(state_fs: Any) -> list[Any]:
        """The state blocks the user changed (their versions are checked by the services)."""
        if state_fs is None:
            return []
        return [
            sform
            for sform in state_fs.forms
            if sform.has_changed() and sform.instance.pk is not None and sform.edited()
        ]

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


_FLAG_FIELDS = ("name", "description", "flag_type", "owner", "risk", "expires_on", "tags")


def _state_change(sform: Any) -> dict[str, Any]:
    """One edited state block as a ``save_flag`` state entry."""
    state_cd = sform.cleaned_data
    entry: dict[str, Any] = {
        "environment": sform.instance.environment,
        "expected_version": state_cd.get("version"),
        "enabled": state_cd["enabled"],
        "fallthrough": state_cd["fallthrough"],
        "prerequisites": state_cd["prerequisites"],
    }
    if "rules_text" in state_cd:
        # The one-line syntax has no descriptions: keep them by rule id.
        described = dict(sform.instance.rules.values_list("rule_id", "description"))
        entry["rules"] = [
            {**rule, "description": described.get(rule["id"] or "", "")}
            for rule in state_cd["rules_text"]
        ]
    return entry


# --- per-environment state with ordered rules -------------------------------------------------
