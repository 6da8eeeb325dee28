"""Admin plumbing shared by every flagapp ModelAdmin: saving through :mod:`flagapp.services`.

Why the admin does not save models itself: the services are the one write path (validation
by the engine's parser, governance, version check, history with a reason, publishing). The
admin collects the form and inline data, and during validation — inside the admin's own
transaction, in a savepoint — applies it with the services. A refusal becomes form errors
on the right field (and the savepoint is rolled back), so bad input is shown like any other
validation error, never as a server error. ``save_model`` / ``save_related`` then have
nothing left to do.

Here: :class:`ServiceAdminMixin` (read-only history, no deletion), the service step run
during validation, :func:`attach_errors` (service error -> form field) and
:func:`reason_action` (an admin action that asks for a reason first).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms import Media
from django.forms.utils import ErrorList, pretty_name
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from simple_history.template_utils import HistoricalRecordContextHelper

from flagapp.exceptions import (
    ApprovalRequired,
    ChangeNotPermitted,
    FlagValidationError,
    VersionConflict,
)

from .forms import (
    ReasonForm,
)
from .syntax import describe_path

SERVICE_ERRORS = (FlagValidationError, VersionConflict, ApprovalRequired, ChangeNotPermitted)


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


def messages_of(exc: Exception) -> dict[str, list[str]]:
    if isinstance(exc, FlagValidationError):
        # Paths such as rules[1].when[0] are for programs: say "Rule 2, condition 1".
        return {
            field: [describe_path(str(m)) for m in msgs] for field, msgs in exc.message_dict.items()
        }
    if isinstance(exc, VersionConflict):
        what = exc.resource or "this"
        return {
            "__all__": [
                f"{what} was changed by someone else since you opened it "
                f"(now version {exc.current_version}). Reload the page; nothing was saved."
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
    for service_field, msgs in messages_of(exc).items():
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
        except SERVICE_ERRORS as exc:
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
    """Nothing was saved; a change request now holds the change (flagapp.admin.governance)."""
    from .governance import propose_from_admin

    propose_from_admin(request, exc, form)
    return False


def _confirmed(request: HttpRequest, form: Any, saved: Any) -> bool:
    """A change that moves users is shown with its blast radius before it is committed
    (flagapp.admin.governance.confirm_blast_radius)."""
    from .governance import confirm_blast_radius

    return confirm_blast_radius(request, form, saved)


def readable(value: Any) -> str:
    """A stored value as a person typed it: JSON spelling (``true``, ``null``, ``{"a": 1}``)
    rather than Python's (``True``, ``None``); text as is."""
    if isinstance(value, str):
        return value
    if value is None:
        return "-"
    try:
        return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


class _ReadableValues(HistoricalRecordContextHelper):  # type: ignore[misc]
    """History deltas with values in :func:`readable` form (not ``False`` / ``None``)."""

    def prepare_delta_change_value(self, change: Any, value: Any) -> Any:
        prepared = super().prepare_delta_change_value(change, value)
        if isinstance(prepared, Model):
            return str(prepared)
        return readable(prepared)


def label_widgets(formset: Any) -> None:
    """Give every visible widget of ``formset``'s forms an ``aria-label`` (the field's label,
    "Delete" included).

    Why: a tabular inline names its columns in ``<th>`` cells, which label nothing for
    assistive technology — axe-core reports every cell's input as unlabelled (critical).
    Done in ``add_fields``, which the formset calls for each form (and its empty form) after
    adding ORDER/DELETE."""
    add_fields = formset.add_fields

    def labelled(form: Any, index: Any) -> None:
        add_fields(form, index)
        for name, field in form.fields.items():
            if not field.widget.is_hidden:
                label = field.label if field.label is not None else pretty_name(name)
                field.widget.attrs.setdefault("aria-label", str(label))

    formset.add_fields = labelled


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
        for formset, inline in zip(formsets, inline_instances, strict=False):
            if isinstance(inline, admin.TabularInline):
                label_widgets(formset)  # its forms are built lazily, later
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

    # read-only history (SimpleHistoryAdmin). Its list already has a "Change reason" column;
    # this template says "system" for changes without a user and shows values as typed.
    history_list_display: list[str] = []
    object_history_list_template = "admin/flagapp/object_history_list.html"

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        """Without the reason field where nothing can be saved (view permission only, a
        historical version): a read-only "Reason: None" tells the reader nothing."""
        return self.without_reason(request, obj, super().get_fieldsets(request, obj))  # type: ignore[misc]

    def without_reason(self, request: HttpRequest, obj: Any, fieldsets: Any) -> Any:
        if not getattr(request, "_flagapp_read_only", False) and self.has_change_permission(  # type: ignore[attr-defined]
            request, obj
        ):
            return fieldsets
        out = []
        for name, opts in fieldsets:
            fields = [f for f in opts.get("fields", []) if f not in ("reason", "version")]
            if fields:
                out.append((name, {**opts, "fields": fields}))
        return out

    def get_historical_record_context_helper(
        self, request: HttpRequest, historical_record: Any
    ) -> Any:
        return _ReadableValues(self.model, historical_record)  # type: ignore[attr-defined]

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if request.method == "POST":
            raise PermissionDenied("history is read-only")
        request._flagapp_read_only = True  # type: ignore[attr-defined]
        response: HttpResponse = super().history_form_view(  # type: ignore[misc]
            request, object_id, version_id, extra_context
        )
        return response


def reason_action(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    title: str,
    explanation: str,
    submit_label: str,
    perform: Callable[[Any, str], str | None],
    notes: Sequence[str] = (),
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
        "notes": list(notes),
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/flagapp/reason_action.html", context)
