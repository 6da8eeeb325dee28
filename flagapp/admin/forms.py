"""The admin's forms: every field a person types in is text in the syntaxes of
:mod:`flagapp.admin.syntax`, read back to the ruleset-format JSON here; the services validate
the rest."""

from __future__ import annotations

import hashlib
from typing import Any

from django import forms
from django.utils.html import escape

from flagapp.models import Environment, Flag, FlagState, Segment, TargetingRule, Variant

from .editor import PrerequisitesEditorWidget, RulesEditorWidget
from .syntax import (
    format_conditions,
    format_prerequisites,
    format_rules,
    format_serve,
    format_value,
    parse_conditions,
    parse_keys,
    parse_prerequisites,
    parse_rules,
    parse_serve,
)

__all__ = [
    "EnvironmentForm",
    "FlagForm",
    "FlagStateForm",
    "FlagStateInlineForm",
    "ReasonForm",
    "RuleForm",
    "SegmentForm",
    "VariantForm",
    "VersionedForm",
    "reason_field",
    "version_field",
]

REASON_HELP = "Why? Recorded in the history with your name (required)."


def reason_field() -> forms.CharField:
    return forms.CharField(
        label="Reason for the change",
        help_text=REASON_HELP,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 80}),
        max_length=2000,
    )


# --- forms -------------------------------------------------------------------------------------


class ReasonForm(forms.Form):
    """Intermediate page of admin actions (kill switch, archive)."""

    reason = reason_field()


def version_field() -> forms.IntegerField:
    """The version the page was opened at (hidden): the services refuse a save made over a
    newer version, naming what changed (``services._base.check_version``)."""
    return forms.IntegerField(widget=forms.HiddenInput, required=False)


class VersionedForm(forms.ModelForm):
    """A form of a versioned resource: carries the version it was opened at."""

    version = version_field()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "version" in self.fields and self.instance.pk:
            self.initial["version"] = self.instance.version


class FlagForm(VersionedForm):
    tags = forms.CharField(required=False, help_text="Comma-separated.")
    reason = reason_field()

    class Meta:
        model = Flag
        fields = [
            "key",
            "name",
            "description",
            "kind",
            "flag_type",
            "owner",
            "risk",
            "expires_on",
            "tags",
            "archived",
            "version",
        ]

    #: Posted back with the values the page showed (``show_hidden_initial``), so
    #: ``changed_data`` is what *this user* changed, not what someone else changed since.
    TRACKED = (
        "name",
        "description",
        "flag_type",
        "owner",
        "risk",
        "expires_on",
        "tags",
        "archived",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "tags" in self.fields and self.instance.pk:
            self.initial["tags"] = ", ".join(self.instance.tags or [])
        if self.instance.pk:
            for name in self.TRACKED:
                if name in self.fields:
                    self.fields[name].show_hidden_initial = True

    def clean_tags(self) -> list[str]:
        return parse_keys(self.cleaned_data.get("tags") or "")

    def validate_unique(self) -> None:
        """Key uniqueness and reuse are the services' (with the tombstone check)."""


class VariantForm(forms.ModelForm):
    value = forms.CharField(
        help_text="Text for string flags; true/false; a number; JSON for object flags.",
        widget=forms.TextInput(attrs={"size": 30}),
    )

    class Meta:
        model = Variant
        fields = ["key", "value", "description", "order"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["value"] = format_value(self.instance.flag.kind, self.instance.value)

    def validate_unique(self) -> None:
        """The formset checks duplicates among the rows; the services do the rest."""


class _StateFieldsMixin(VersionedForm):
    fallthrough = forms.CharField(
        required=False,
        help_text="When no rule matches: a variant (off), weights (on:10 off:90 [by=attr]), "
        "or empty for the caller's own default.",
    )
    prerequisites = forms.CharField(
        required=False,
        widget=PrerequisitesEditorWidget(attrs={"rows": 2, "cols": 60}),
        # The admin renders help texts as HTML: the placeholders must be escaped.
        help_text=escape("One per line: <flag key>: <variant>, <variant>"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # The editor's serve pickers offer this flag's variants.
            for name in ("prerequisites", "rules_text"):
                widget = self.fields[name].widget if name in self.fields else None
                if isinstance(widget, RulesEditorWidget | PrerequisitesEditorWidget):
                    widget.flag_id = self.instance.flag_id
            self.initial["fallthrough"] = format_serve(self.instance.fallthrough)
            self.initial["prerequisites"] = format_prerequisites(self.instance.prerequisites)

    def clean_fallthrough(self) -> dict[str, Any] | None:
        return parse_serve(self.cleaned_data.get("fallthrough") or "", allow_empty=True)

    def clean_prerequisites(self) -> list[dict[str, Any]]:
        return parse_prerequisites(self.cleaned_data.get("prerequisites") or "")


def _fingerprint(enabled: Any, texts: list[Any]) -> str:
    """What one environment block showed, as a short hash (line endings and surrounding
    blanks do not count: browsers post textareas with CRLF)."""
    parts = [str(bool(enabled) and enabled not in ("", "0", "false", "False"))]
    parts += ["\n".join(line.strip() for line in str(t or "").splitlines()).strip() for t in texts]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]


class FlagStateInlineForm(_StateFieldsMixin):
    #: The block as it was shown (see :meth:`edited`).
    opened = forms.CharField(widget=forms.HiddenInput, required=False)
    rules_text = forms.CharField(
        label="Rules",
        required=False,
        widget=RulesEditorWidget(attrs={"rows": 3, "cols": 80}),
        help_text="One rule per line, tried in order: [id] plan in pro; country eq US => on "
        "· [beta] in_segment beta => on:10 off:90 · => off (everyone). Descriptions are "
        "kept by id; edit them on the rules page.",
    )

    class Meta:
        model = FlagState
        fields = ["enabled", "fallthrough", "prerequisites", "rules_text", "version", "opened"]

    _TEXTS = ("fallthrough", "prerequisites", "rules_text")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["rules_text"] = format_rules(
                [(r.rule_id, r.conditions, r.serve) for r in self.instance.rules.all()]
            )
            self.initial["opened"] = _fingerprint(
                self.instance.enabled, [self.initial.get(name) for name in self._TEXTS]
            )

    def edited(self) -> bool:
        """Whether the user changed this block, as opposed to someone else changing the
        state since the page was opened.

        Why: the posted block of an environment nobody touched still holds the values of
        the version that was shown; compared with the stored state it looks "changed"
        when another person changed that environment meanwhile, and the version check
        then refused a save (a rename) that never touched it. The block is the user's
        edit only when what they post differs from what they were shown.
        """
        shown: object = self.data.get(self.add_prefix("opened")) if self.is_bound else None
        if not shown:
            return True  # no fingerprint posted: judge by the stored values (has_changed)
        enabled: object = self.fields["enabled"].widget.value_from_datadict(
            self.data, self.files, self.add_prefix("enabled")
        )
        posted = _fingerprint(enabled, [self.data.get(self.add_prefix(n)) for n in self._TEXTS])
        return posted != shown

    def clean_rules_text(self) -> list[dict[str, Any]]:
        return parse_rules(self.cleaned_data.get("rules_text") or "")


class FlagStateForm(_StateFieldsMixin):
    reason = reason_field()

    class Meta:
        model = FlagState
        fields = ["enabled", "fallthrough", "prerequisites", "version"]


class RuleForm(forms.ModelForm):
    rule_id = forms.CharField(
        required=False, max_length=64, label="Id", help_text="Generated when empty."
    )
    conditions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 50}),
        help_text="One per line, all must hold: plan in pro, enterprise / country eq US / "
        "not email ends_with/i @example.com / in_segment beta. Empty: everyone.",
    )
    serve = forms.CharField(help_text="A variant (on) or weights (on:10 off:90 [by=attr]).")

    class Meta:
        model = TargetingRule
        fields = ["order", "rule_id", "description", "conditions", "serve"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["conditions"] = format_conditions(self.instance.conditions)
            self.initial["serve"] = format_serve(self.instance.serve)

    def clean_conditions(self) -> list[dict[str, Any]]:
        return parse_conditions(self.cleaned_data.get("conditions") or "")

    def clean_serve(self) -> dict[str, Any] | None:
        return parse_serve(self.cleaned_data.get("serve") or "", allow_empty=False)

    def validate_unique(self) -> None:
        """Rule ids are checked by the engine (duplicate ids) through the services."""


class SegmentForm(VersionedForm):
    include = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text="Context keys that always match, one per line.",
    )
    exclude = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text="Context keys that never match, one per line.",
    )
    conditions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Everyone else matches when all hold (one per line, as in rules). "
        "Empty: only the include list.",
    )
    reason = reason_field()

    class Meta:
        model = Segment
        fields = ["key", "name", "description", "include", "exclude", "conditions", "version"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["include"] = "\n".join(self.instance.include or [])
            self.initial["exclude"] = "\n".join(self.instance.exclude or [])
            self.initial["conditions"] = format_conditions(self.instance.conditions)

    def clean_include(self) -> list[str]:
        return parse_keys(self.cleaned_data.get("include") or "")

    def clean_exclude(self) -> list[str]:
        return parse_keys(self.cleaned_data.get("exclude") or "")

    def clean_conditions(self) -> list[dict[str, Any]]:
        return parse_conditions(self.cleaned_data.get("conditions") or "")

    def validate_unique(self) -> None:
        """The services check segment keys."""


class EnvironmentForm(VersionedForm):
    reason = reason_field()

    class Meta:
        model = Environment
        fields = ["key", "name", "protected", "order", "version"]

    def validate_unique(self) -> None:
        """The services check environment keys."""
