"""Admin for rollouts and experiments .

Plans are created and edited here as drafts (with their guardrails inline) through
:func:`flagapp.rollouts.plans.create_plan` / ``update_plan``, like the API; start, pause, resume and
rollback are admin actions that ask for a reason and go through
:mod:`flagapp.rollouts.controller` — the same code path as the API and the beat task. The
change page shows the timeline chart and the full transition history; the experiment page
shows the results table, the sample-ratio check and the confidence-interval chart. Charts
are inline SVG rendered on the server (no script, no CDN).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from flagapp.exceptions import ApprovalRequired, FlagappError, FlagValidationError
from flagapp.models import (
    Experiment,
    RolloutGuardrail,
    RolloutPlan,
    RolloutTransition,
)
from flagapp.rollouts import controller, plans
from flagapp.rollouts.controller import start_rollout
from flagapp.rollouts.schedule import format_bps
from flagapp.rollouts.states import InvalidTransition
from flagapp.services.rollouts import start_notes

from .base import ServiceAdminMixin, _Refusal, _snapshot, attach_errors
from .forms import VersionedForm

__all__ = ["ExperimentAdmin", "RolloutPlanAdmin"]


class _ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the rollout history and in the flag's change history.",
    )


#: the plan's own fields, as the admin shows them (the form adds the hidden ``version``)
PLAN_FIELDS = [
    "flag",
    "environment",
    "treatment_variant",
    "control_variant",
    "schedule",
    "steps",
    "min_step_seconds",
    "salt",
    "metric_source",
    "notify_owners",
    "change_request",
]


class RolloutPlanForm(VersionedForm):
    """The plan's fields; :func:`flagapp.rollouts.plans.create_plan` / ``update_plan``
    decide what is valid (variants, steps, guardrails) and their refusals come back on the
    fields and the guardrail rows (:meth:`RolloutPlanAdmin.apply`). The form only parses."""

    class Meta:
        model = RolloutPlan
        fields = [*PLAN_FIELDS, "version"]
        help_texts = {
            "change_request": "Where approval is required: the approved change request of "
            "the plan's first step (the Start action tells you the change to propose).",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        steps = data.get("steps")
        if steps is not None and not isinstance(steps, list):
            self.add_error("steps", "a list of basis points, e.g. [100, 1000, 5000, 10000]")
        return data


class _RegionInline(admin.TabularInline):
    """A tabular inline a keyboard reaches when it scrolls sideways on a narrow screen
    (the template says why)."""

    template = "admin/flagapp/rolloutplan/tabular_region.html"

    class Media:
        css: ClassVar = {"all": ["flagapp/inline-region.css"]}


class GuardrailInline(_RegionInline):
    model = RolloutGuardrail
    extra = 0

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(obj is None or obj.state == "draft") and super().has_change_permission(
            request, obj
        )

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


class TransitionInline(_RegionInline):
    model = RolloutTransition
    extra = 0
    can_delete = False
    fields = ["at", "action", "from_state", "to_state", "served", "reason", "automatic", "actor"]
    readonly_fields = [
        "at",
        "action",
        "from_state",
        "to_state",
        "served",
        "reason",
        "automatic",
        "actor",
    ]
    verbose_name_plural = "history"

    @admin.display(description="served")
    def served(self, obj: RolloutTransition) -> str:
        return f"{format_bps(obj.from_bps)} -> {format_bps(obj.to_bps)}"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _transition_action(name: str, label: str) -> Any:
    def run(
        modeladmin: RolloutPlanAdmin, request: HttpRequest, queryset: QuerySet[RolloutPlan]
    ) -> HttpResponse | None:
        form = _ReasonForm(request.POST if "apply" in request.POST else None)
        notes = [note for plan in queryset for note in start_notes(plan)] if name == "start" else []
        if not form.is_valid():
            return TemplateResponse(
                request,
                "admin/flagapp/reason_action.html",
                {
                    **modeladmin.admin_site.each_context(request),
                    "opts": modeladmin.model._meta,
                    "title": f"{label}: why?",
                    "explanation": f"{label} these rollouts. The reason goes into the history.",
                    "queryset": queryset,
                    "form": form,
                    "action": f"rollout_{name}",
                    "submit_label": label,
                    "notes": notes,
                },
            )
        reason = form.cleaned_data["reason"]
        for plan in queryset:
            try:
                func: Any = {
                    "start": start_rollout,
                    "pause": controller.pause,
                    "resume": controller.resume,
                    "rollback": controller.rollback,
                }[name]
                if name == "start":
                    func(
                        plan, actor=request.user, reason=reason, change_request=plan.change_request
                    )
                else:
                    func(plan, actor=request.user, reason=reason)
                modeladmin.message_user(request, f"{plan}: {name} done", messages.SUCCESS)
            except ApprovalRequired as exc:
                modeladmin.message_user(
                    request,
                    f"{plan}: {exc}. Propose this change as a change request: "
                    f"{json.dumps(exc.change)}; once approved, select it on the plan.",
                    messages.WARNING,
                )
            except FlagValidationError as exc:
                # the start guard (controller.start_rollout): nothing changed
                text = " ".join(m for ms in exc.message_dict.values() for m in ms)
                modeladmin.message_user(request, f"{plan}: not started. {text}", messages.ERROR)
            except (InvalidTransition, FlagappError) as exc:
                modeladmin.message_user(request, f"{plan}: {exc}", messages.ERROR)
        return None

    run.__name__ = f"rollout_{name}"
    return admin.action(description=f"{label} (asks for a reason)")(run)


#: the guardrail fields :func:`flagapp.rollouts.plans.create_plan` takes from the inline
_GUARDRAIL_FIELDS = ("metric", "threshold", "event_key", "percentile", "comparison", "min_sample")
#: a guardrail refusal as the service words it: ``guardrails[1].percentile: must be ...``
_GUARDRAIL_PATH = re.compile(
    r"^guardrails\[(?P<row>\d+)\](?:\.(?P<field>\w+))?: (?P<text>.*)$", re.S
)


@admin.register(RolloutPlan)
class RolloutPlanAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = RolloutPlanForm
    list_display = [
        "id",
        "flag",
        "environment",
        "state",
        "served",
        "treatment_variant",
        "started_at",
        "last_status",
    ]
    list_filter = ["state", "environment"]
    list_select_related = ["flag", "environment"]
    search_fields = ["flag__key"]
    inlines = [GuardrailInline, TransitionInline]
    actions = [
        _transition_action("start", "Start"),
        _transition_action("pause", "Pause"),
        _transition_action("resume", "Resume"),
        _transition_action("rollback", "Roll back"),
    ]
    runtime_fields = [
        "state",
        "timeline",
        "served",
        "step_index",
        "step_started_at",
        "started_at",
        "finished_at",
        "last_check_at",
        "last_check_text",
        "safe_state",
        "approved",
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        if obj.state != "draft":
            return [*PLAN_FIELDS, *self.runtime_fields]
        return self.runtime_fields

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [(None, {"fields": RolloutPlanForm.Meta.fields})]
        plan_fields = RolloutPlanForm.Meta.fields if obj.state == "draft" else PLAN_FIELDS
        return [
            ("Progress", {"fields": self.runtime_fields}),
            ("Plan", {"fields": plan_fields}),
        ]

    def apply(
        self, request: HttpRequest, form: Any, formsets: Sequence[Any], obj: Any, change: bool
    ) -> RolloutPlan:
        """The service step (:class:`~flagapp.admin.base.ServiceAdminMixin`): a new plan is
        :func:`flagapp.rollouts.plans.create_plan` with the inline guardrails, an edited
        draft :func:`~flagapp.rollouts.plans.update_plan` — the API's checks, so the admin
        cannot store a plan the API refuses; a refusal comes back on the form."""
        data = form.cleaned_data
        rows = [
            inline
            for formset in formsets
            if formset.model is RolloutGuardrail
            for inline in formset.forms
            if inline.cleaned_data and not inline.cleaned_data.get("DELETE")
        ]
        guardrails = [{name: row.cleaned_data[name] for name in _GUARDRAIL_FIELDS} for row in rows]
        fields: dict[str, Any] = {
            "treatment": data["treatment_variant"],
            "control": data["control_variant"],
            "schedule": data["schedule"],
            "steps": data.get("steps"),
            "min_step_seconds": data["min_step_seconds"],
            "metric_source": data["metric_source"],
            "salt": data.get("salt", ""),
            "notify_owners": data.get("notify_owners", False),
            "change_request": data.get("change_request"),
            "guardrails": guardrails,
        }
        try:
            if change:
                stored = RolloutPlan.objects.get(pk=obj.pk)
                if (data["schedule"], data.get("steps")) == (stored.schedule, stored.steps):
                    # the step list as stored: a linear or S-curve list built from a count
                    # the form does not show must not be rebuilt from the default count
                    fields.update(schedule=None, steps=None)
                return plans.update_plan(
                    stored,
                    flag=data["flag"],
                    environment=data["environment"],
                    expected_version=data.get("version"),
                    **fields,
                )
            return plans.create_plan(
                data["flag"], data["environment"], actor=request.user, **fields
            )
        except FlagValidationError as exc:
            # Each guardrail problem on its row and field, the rest on the plan's form.
            rest = dict(exc.message_dict)
            placed = False
            for message in rest.pop("guardrails", []):
                match = _GUARDRAIL_PATH.match(message)
                if match and int(match["row"]) < len(rows):
                    row = rows[int(match["row"])]
                    field = match["field"] if match["field"] in row.fields else None
                    row.add_error(field, match["text"])
                    placed = True
                else:
                    rest.setdefault("guardrails", []).append(message)
            if rest:
                attach_errors(form, FlagValidationError(rest))
            if placed:
                form.add_error(None, "Nothing was saved: see the guardrail errors below.")
            raise _Refusal(_snapshot(form, formsets)) from None

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        """Django's message for the plan's own fields (plans are not asked for a reason, which
        the mixin's message names). Without the inlines: Django reads ``new_objects`` of
        formsets it saved itself, and here ``create_plan`` / ``update_plan`` saved them."""
        return admin.ModelAdmin.construct_change_message(self, request, form, [], add)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Plans keep Django's delete permission (the mixin's "no deletion" is for resources
        with a change history)."""
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    @admin.display(description="served")
    def served(self, obj: RolloutPlan) -> str:
        return format_bps(obj.current_bps)

    @admin.display(description="last check")
    def last_status(self, obj: RolloutPlan) -> str:
        return str((obj.last_check or {}).get("status", "-"))

    @admin.display(description="last check")
    def last_check_text(self, obj: RolloutPlan) -> str:
        check = obj.last_check or {}
        return f"{check.get('status', '-')}: {check.get('message', '')}"

    @admin.display(description="timeline")
    def timeline(self, obj: RolloutPlan) -> SafeString:
        from flagapp.rollouts.views import plan_timeline_svg

        # The SVG is built by our own code with every text escaped (charts.py).
        return mark_safe(plan_timeline_svg(obj))


class ExperimentForm(VersionedForm):
    """Validated by :func:`flagapp.services.validate_experiment`, the API's validation: the
    admin cannot store an experiment the API refuses. Carries the version it was opened at
    (a save over someone else's change is refused by the services)."""

    class Meta:
        model = Experiment
        exclude = ["created_by"]

    def clean(self) -> dict[str, Any]:
        from flagapp.services.experiments import EXPERIMENT_FIELDS, validate_experiment

        cleaned = super().clean() or self.cleaned_data
        values: dict[str, Any] = {}
        if self.instance.pk is not None:
            values = {name: getattr(self.instance, name) for name in EXPERIMENT_FIELDS}
        values.update({k: v for k, v in cleaned.items() if k in EXPERIMENT_FIELDS})
        if "flag" in self.fields and "flag" not in cleaned:
            return cleaned  # the field's own error is shown already
        try:
            validate_experiment(values)
        except FlagValidationError as exc:
            for field, messages_ in exc.message_dict.items():
                target = field if field in self.fields else None
                for message in messages_:
                    self.add_error(target, message)
        return cleaned


@admin.register(Experiment)
class ExperimentAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = ExperimentForm
    list_display = [
        "name",
        "flag",
        "environment",
        "control_variant",
        "conversion_event",
        "started_at",
        "ended_at",
    ]
    list_filter = ["environment"]
    search_fields = ["name", "flag__key"]
    readonly_fields = ["results"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        field: Any = form.base_fields.get("flag")
        if field is not None:
            field.queryset = field.queryset.filter(flag_type="experiment")
        return form

    def apply(
        self, request: HttpRequest, form: Any, formsets: Sequence[Any], obj: Any, change: bool
    ) -> Experiment:
        """The service step (:class:`~flagapp.admin.base.ServiceAdminMixin`), like the API:
        validation, permission and the version check; a refusal comes back on the form."""
        from flagapp.services.experiments import (
            EXPERIMENT_FIELDS,
            create_experiment,
            update_experiment,
        )

        fields = {k: v for k, v in form.cleaned_data.items() if k in EXPERIMENT_FIELDS}
        if change:
            stored = Experiment.objects.get(pk=obj.pk)
            return update_experiment(
                stored,
                actor=request.user,
                expected_version=form.cleaned_data.get("version"),
                **fields,
            )
        return create_experiment(actor=request.user, **fields)

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        """Django's own message (experiments are not asked for a reason)."""
        return admin.ModelAdmin.construct_change_message(self, request, form, formsets, add)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Experiments keep Django's delete permission (they have no change history)."""
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    @admin.display(description="results")
    def results(self, obj: Experiment) -> SafeString:
        if obj.pk is None:
            return mark_safe("<p>Results appear once the experiment is saved.</p>")
        from flagapp.rollouts.experiments import analyse
        from flagapp.rollouts.views import experiment_results_svg

        r = analyse(obj)
        srm: Any = ""
        if r.srm is not None and sum(r.srm.observed) == 0:
            # No exposures yet: the check has nothing to compare (p = 1 by convention),
            # which must not read as a healthy split.
            srm = format_html(
                '<p class="flagapp-srm-no-data"><strong>{}</strong></p>',
                "No data yet: the sample ratio cannot be checked until users are assigned",
            )
        elif r.srm is not None:
            srm = format_html(
                '<p style="color:{}"><strong>{}</strong> (chi-square {}, df {}, p = {})</p>',
                "#dc2626" if r.srm.mismatch else "#15803d",
                "Sample-ratio mismatch: assignment looks broken, do not trust these results"
                if r.srm.mismatch
                else "Sample ratio as intended",
                f"{r.srm.statistic:.2f}",
                r.srm.df,
                f"{r.srm.p_value:.4g}",
            )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    v.variant + (" (control)" if v.control else ""),
                    f"{v.users:,}",
                    f"{v.conversions:,}",
                    f"{v.rate:.2%}",
                    f"{v.test.diff * 100:+.2f}pp [{v.test.ci_low * 100:+.2f}, "
                    f"{v.test.ci_high * 100:+.2f}]"
                    if v.test
                    else "-",
                    f"{v.test.p_value:.4g}" if v.test else "-",
                )
                for v in r.variants
            ),
        )
        size = (
            format_html(
                "<p>Sample size needed per variant: {}</p>", f"{r.sample_size_per_variant:,}"
            )
            if r.sample_size_per_variant
            else ""
        )
        table = format_html(
            "<table><thead><tr><th>variant</th><th>users</th><th>conversions</th><th>rate</th>"
            "<th>difference vs control ({} CI)</th><th>p-value</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            f"{r.confidence:.0%}",
            rows,
        )
        chart = mark_safe(experiment_results_svg(r))
        return format_html("{}{}{}{}", srm, table, size, chart)
