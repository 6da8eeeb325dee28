"""The flag-state admin: one flag in one environment, its targeting rules edited one
by one (with descriptions), reached from the flag page."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from flagapp import services
from flagapp.exceptions import (
    FlagValidationError,
)
from flagapp.models import (
    FlagState,
    TargetingRule,
)

from .base import ServiceAdminMixin
from .forms import (
    FlagStateForm,
    RuleForm,
)
from .syntax import describe_path, format_conditions, format_prerequisites, format_serve


class StateTextFields:
    """The read-only spellings of a state's fields, in the syntaxes the edit forms use
    (shared by the flag page's state blocks and the state page)."""

    @admin.display(description="fallthrough")
    def fallthrough_text(self, obj: FlagState) -> str:
        return format_serve(obj.fallthrough) or "(the caller's default)"

    @admin.display(description="prerequisites")
    def prerequisites_text(self, obj: FlagState) -> str:
        return format_prerequisites(obj.prerequisites) or "-"


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

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if self.has_change_permission(request, obj):
            return self.fields
        # read-only: the text syntaxes the edit form shows, not stored JSON
        return ["order", "rule_id", "description", "conditions_text", "serve_text"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["conditions_text", "serve_text"]

    @admin.display(description="conditions")
    def conditions_text(self, obj: TargetingRule) -> str:
        return format_conditions(obj.conditions) or "(everyone)"

    @admin.display(description="serve")
    def serve_text(self, obj: TargetingRule) -> str:
        return format_serve(obj.serve)


@admin.register(FlagState)
class FlagStateAdmin(StateTextFields, ServiceAdminMixin, SimpleHistoryAdmin):
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

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj):
            return fieldsets
        # read-only: the text syntaxes the edit form shows, not stored JSON or a version
        shown = {"fallthrough": "fallthrough_text", "prerequisites": "prerequisites_text"}
        return [
            (
                name,
                {
                    **opts,
                    "fields": [shown.get(f, f) for f in opts["fields"] if f != "version"],
                },
            )
            for name, opts in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if self.has_change_permission(request, obj):
            return self.readonly_fields
        return [*self.readonly_fields, "fallthrough_text", "prerequisites_text"]

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
                    rule_forms[int(m.group(1))].add_error(field, describe_path(text))
                else:
                    rest.append(describe_path(text))
        if rest:
            rule_fs._non_form_errors = rule_fs.error_class(
                [*rule_fs.non_form_errors(), *rest], error_class="nonform"
            )
        if not exc.error_dict:
            exc.error_dict["__all__"] = [ValidationError("See the rules below.")]


# --- segments, environments, snapshots ---------------------------------------------------------
