"""Admin plumbing shared by every flagapp ModelAdmin: saving through :mod:`flagapp.services`.

Why the admin does not save models itself: the services are the one write path (validation
by the engine's parser, governance, version check, history with a reason, publishing). The
admin collects the form and inline data and, once Django has validated them, applies them
with the services — in ``save_related``, the documented hook that receives the validated
form and inline formsets, inside the view's transaction. A refusal is raised from there,
so the transaction rolls back, and ``changeform_view`` renders the page again from the same
POST with the refusal as errors on the right field: bad input is shown like any other
validation error, never as a server error. Only documented ModelAdmin hooks are used
(``changeform_view``, ``get_form``, ``get_formsets_with_inlines``, ``save_model``,
``save_related``); a test keeps it so.

Here: :class:`ServiceAdminMixin` (read-only history, no deletion), the service step,
:func:`attach_errors` (service error -> form field) and :func:`reason_action` (an admin
action that asks for a reason first).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.db.models import Model, QuerySet
from django.forms.utils import pretty_name
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


class _Refusal(Exception):
    """A save the services refused, or one waiting for its blast-radius confirmation.

    Raised from ``save_related`` inside the admin's ``transaction.atomic``, so everything the
    services wrote is rolled back; :meth:`ServiceAdminMixin.changeform_view` catches it and
    renders the page again from the same POST, with ``errors`` put back on the form, the
    inline forms and the inline formsets they were shown on. ``approval``: the services asked
    for an approved change request; it is proposed while the page is rendered again."""

    def __init__(self, errors: _Errors, approval: ApprovalRequired | None = None) -> None:
        super().__init__("refused by the services")
        self.errors = errors
        self.approval = approval


#: errors to show again: form prefix ("" for the main form) -> field -> messages, and
#: formset prefix -> the formset's own (non-form) messages under the key ``None``.
_Errors = dict[str, dict[str | None, list[str]]]

_MAIN = ""


def _snapshot(form: forms.BaseForm, formsets: Sequence[Any]) -> _Errors:
    """The errors now on ``form`` and the inlines, as text (messages keep their safe HTML)."""
    out: _Errors = {_MAIN: {field: _texts(errs) for field, errs in form.errors.items()}}
    for formset in formsets:
        own: dict[str | None, list[str]] = {}
        if formset.non_form_errors():
            own[None] = _texts(formset.non_form_errors())
        out["formset:" + formset.prefix] = own
        for inline_form in formset.forms:
            if inline_form.errors:
                out[inline_form.prefix] = {f: _texts(e) for f, e in inline_form.errors.items()}
    return out


def _texts(errors: Any) -> list[str]:
    """An ErrorList's messages (iterating it yields text; ``format_html`` output stays safe)."""
    return [str(text) for text in errors]


def _replay(form: forms.BaseForm, errors: dict[str | None, list[str]]) -> None:
    for field, texts in errors.items():
        if field is None:
            continue
        if field in form.fields:
            form.add_error(field, list(texts))
        elif field == NON_FIELD_ERRORS:
            form.add_error(None, list(texts))
        else:
            form.add_error(None, [f"{field}: {text}" for text in texts])


def _service_formset(base: type[Any], request: HttpRequest, tabular: bool) -> type[Any]:
    """``base`` (an inline's formset class) labelling its widgets (tabular inlines,
    :func:`_label_fields`) and showing again the errors of a refused save
    (:class:`_Refusal`) once it has validated itself."""

    class ServiceFormSet(base):  # type: ignore[misc]
        def add_fields(self, form: Any, index: Any) -> None:
            super().add_fields(form, index)
            if tabular:
                _label_fields(form)

        def full_clean(self) -> None:
            super().full_clean()
            refusal: _Refusal | None = getattr(request, "_flagapp_refusal", None)
            if refusal is None:
                return
            own = refusal.errors.get("formset:" + self.prefix, {})
            if own.get(None):
                self.non_form_errors().extend(own[None])
            for inline_form in self.forms:
                if inline_form.prefix in refusal.errors:
                    _replay(inline_form, refusal.errors[inline_form.prefix])

    ServiceFormSet.__name__ = base.__name__
    ServiceFormSet.__qualname__ = base.__qualname__
    return ServiceFormSet


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


def _label_fields(form: forms.BaseForm) -> None:
    """Give every visible widget of a tabular inline's ``form`` an ``aria-label`` (the
    field's label, "Delete" included).

    Why: a tabular inline names its columns in ``<th>`` cells, which label nothing for
    assistive technology — axe-core reports every cell's input as unlabelled (critical).
    Called from the formset's ``add_fields`` (:func:`_service_formset`), which runs for each
    form (and the empty form) after ORDER/DELETE are added."""
    for name, field in form.fields.items():
        if not field.widget.is_hidden:
            label = field.label if field.label is not None else pretty_name(name)
            field.widget.attrs.setdefault("aria-label", str(label))


class ServiceAdminMixin:
    """Admin saves through the services (see the module docstring). Subclasses implement
    :meth:`apply`."""

    save_as = False

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """Django's add/change view; a save the services refused (:class:`_Refusal`, raised
        from :meth:`save_related` — the admin's transaction is rolled back by then) renders
        the page again from the same POST, with the refusal's errors on the forms."""
        try:
            response: HttpResponse = super().changeform_view(  # type: ignore[misc]
                request, object_id, form_url, extra_context
            )
        except _Refusal as refusal:
            request._flagapp_refusal = refusal  # type: ignore[attr-defined]
            response = super().changeform_view(  # type: ignore[misc]
                request, object_id, form_url, extra_context
            )
        return response

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        """The admin's form, which — when a save was refused — shows the refusal's errors
        once validated (and proposes the change request the services asked for)."""
        form_class = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]

        class ServiceForm(form_class):  # type: ignore[misc, valid-type]
            def full_clean(self) -> None:
                super().full_clean()
                refusal: _Refusal | None = getattr(request, "_flagapp_refusal", None)
                if refusal is None or not self.is_bound:
                    return
                if refusal.approval is not None:
                    _propose(request, refusal.approval, self)
                _replay(self, refusal.errors.get(_MAIN, {}))
                if not self.errors:  # never saved twice: the page must come back
                    self.add_error(None, "Nothing was saved.")

        ServiceForm.__name__ = form_class.__name__
        ServiceForm.__qualname__ = form_class.__qualname__
        return ServiceForm

    def get_formsets_with_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        for formset_class, inline in super().get_formsets_with_inlines(request, obj):  # type: ignore[misc]
            tabular = isinstance(inline, admin.TabularInline)
            yield _service_formset(formset_class, request, tabular), inline

    def apply(
        self, request: HttpRequest, form: Any, formsets: Sequence[Any], obj: Any, change: bool
    ) -> Model:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Nothing: :meth:`save_related` saves, once the inlines are valid too."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The service step. Django calls it once the form and every inline are valid,
        inside the view's transaction; :meth:`apply` saves through the services. A refusal
        (or a change still to confirm after its blast radius) raises :class:`_Refusal`: the
        transaction is rolled back and the page comes back with the errors."""
        try:
            saved = self.apply(request, form, formsets, form.instance, change)
        except _Targeted as exc:
            if isinstance(exc.exc, ApprovalRequired):
                raise _Refusal({}, approval=exc.exc) from None
            attach_errors(exc.form, exc.exc, exc.label, exc.aliases)
            if exc.form is not form:
                form.add_error(None, "Nothing was saved: see the errors below.")
            raise _Refusal(_snapshot(form, formsets)) from None
        except SERVICE_ERRORS as exc:
            if isinstance(exc, ApprovalRequired):
                raise _Refusal({}, approval=exc) from None
            attach_errors(form, exc)
            raise _Refusal(_snapshot(form, formsets)) from None
        if not _confirmed(request, form, saved):
            raise _Refusal(_snapshot(form, formsets))
        if not change:
            # Django logs and redirects with the object it built from the form (the view's
            # local ``new_object`` is ``form.instance``), not with ``saved``: give it the
            # saved row's key and reload it (``refresh_from_db``, the documented way; it
            # also sets ``_state.db``). ``_state.adding`` stays True: after this hook only
            # ``construct_change_message``, ``log_addition`` and ``response_add`` run, and
            # none of them reads it (Django reads it in inline formset validation, earlier).
            form.instance.pk = saved.pk
            form.instance.refresh_from_db()

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
