"""The visual targeting editor: rules and prerequisites as rows, over the text syntax.

Why this shape: the text syntax (``flagapp.admin.syntax``) stays the one thing the server
reads, so a page works with JavaScript off, the "advanced" text mode is the same field, and
validation (syntax, then the engine through the services) is unchanged. The editor is
progressive enhancement: the widgets below render the textarea as before plus the parsed
*pieces* of its text (``editor_model``) — each condition's attribute, operator and values as
the very tokens the text shows, each serve as a variant or weights — and
``static/flagapp/rule-editor.js`` draws rows from them and writes the text back on every
edit by joining those pieces exactly as ``syntax.format_rules`` does. A text mode change is
read back through :meth:`EditorURLs.editor_parse_view` (the Python parser; there is no second
grammar in JavaScript). Percentages are shown and typed in %, with two decimals, and written
as basis points (``on:2500 off:7500``).

``tests/flagapp/admin/test_rule_editor.py`` runs the JavaScript under Node on a corpus and
requires the text it writes to equal ``format_rules`` of the same rules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST

from flagapp.models import Flag, Segment

from .syntax import (
    condition_json,
    condition_parts,
    format_serve,
    parse_prerequisites,
    parse_rules,
)

__all__ = [
    "EditorURLs",
    "PrerequisitesEditorWidget",
    "RulesEditorWidget",
    "editor_model",
    "operators",
    "serve_parts",
]

#: How long a text may be for the parse endpoint (a page's rules are far smaller).
MAX_TEXT = 200_000


def operators() -> list[dict[str, Any]]:
    """The engine's operators, in its table order, for the operator dropdown."""
    from openfeature_provider.engine.operators import OPERATORS

    return [
        {"name": op.name, "uses_attr": op.uses_attr, "needs_values": op.needs_values}
        for op in OPERATORS.values()
    ]


def serve_parts(serve: Mapping[str, Any] | None) -> dict[str, Any]:
    """A serve as the editor edits it: ``{"variant"}`` or ``{"weights", "options"}``, with
    ``options`` the ``by=``/``salt=``/``hash=`` tokens ``format_serve`` writes (kept as they
    are: the editor shows ``by`` and never drops the others)."""
    if not serve:
        return {"variant": ""}
    if serve.get("variant") is not None:
        return {"variant": str(serve["variant"])}
    rollout = serve.get("rollout") or {}
    weights = [
        {"variant": str(w.get("variant")), "weight": int(w.get("weight") or 0)}
        for w in rollout.get("weights", [])
    ]
    text = format_serve(serve).split(" ")
    return {"weights": weights, "options": text[len(weights) :]}


def _condition_model(cond: Mapping[str, Any]) -> dict[str, Any]:
    parts = condition_parts(cond)
    return {"raw": condition_json(cond)} if parts is None else parts


def editor_model(kind: str, text: str) -> dict[str, Any]:
    """The pieces of ``text`` (``kind`` ``rules`` or ``prerequisites``), or the syntax error.

    ``{"items": [...]}`` or ``{"error": "line 2: ..."}``: a text the parser refuses opens in
    text mode, with the parser's message."""
    try:
        if kind == "prerequisites":
            return {
                "items": [
                    {"flag": str(p["flag"]), "variants": [str(v) for v in p["variants"]]}
                    for p in parse_prerequisites(text)
                ]
            }
        items = []
        for rule in parse_rules(text):
            items.append(
                {
                    "id": rule["id"] or "",
                    "when": [_condition_model(c) for c in rule["when"]],
                    "serve": serve_parts(rule["serve"]),
                }
            )
        return {"items": items}
    except ValidationError as exc:
        return {"error": " ".join(exc.messages)}


class _EditorWidget(forms.Textarea):
    kind = ""

    class Media:
        css = {"all": ("flagapp/rule-editor.css",)}
        js = ("flagapp/rule-editor.js",)

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        #: The flag whose variants the serve pickers offer (set by the form when known; an
        #: id, so rendering needs no query).
        self.flag_id: int | None = None

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        widget_attrs = context["widget"]["attrs"]
        text = self.format_value(value) or ""
        widget_attrs["data-flagapp-editor"] = self.kind
        widget_attrs["data-model"] = json.dumps(editor_model(self.kind, text))
        widget_attrs["data-operators"] = json.dumps(operators())
        widget_attrs["data-options-url"] = reverse("admin:flagapp_editor_options")
        widget_attrs["data-parse-url"] = reverse("admin:flagapp_editor_parse")
        if self.flag_id:
            widget_attrs["data-flag-id"] = str(self.flag_id)
        return context


class RulesEditorWidget(_EditorWidget):
    """The rules textarea, drawn as rule rows by ``rule-editor.js`` when it runs."""

    kind = "rules"


class PrerequisitesEditorWidget(_EditorWidget):
    """The prerequisites textarea, drawn as (flag, variants) rows."""

    kind = "prerequisites"


def _options(segments: Sequence[str], flags: Mapping[str, Any]) -> dict[str, Any]:
    return {"operators": operators(), "segments": list(segments), "flags": dict(flags)}


class EditorURLs:
    """Mixed into the flag admin: the editor's two small JSON endpoints.

    ``editor-options/`` — operators, segment keys and every flag's variant keys (one request
    per page, so rendering the form runs no query for the pickers); ``editor-parse/`` — a
    text-mode edit read back into pieces (POST, CSRF-checked). Both need the view permission
    on flags: they show nothing the flag pages do not."""

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view  # type: ignore[attr-defined]
        return [
            path("editor-options/", view(self.editor_options_view), name="flagapp_editor_options"),
            path(
                "editor-parse/",
                view(require_POST(self.editor_parse_view)),
                name="flagapp_editor_parse",
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def _require_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied

    def editor_options_view(self, request: HttpRequest) -> HttpResponse:
        self._require_view(request)
        flags: dict[str, dict[str, Any]] = {}
        rows = Flag.objects.values_list("id", "key", "archived", "variants__key").order_by(
            "key", "variants__order", "variants__key"
        )
        for flag_id, key, archived, variant in rows:
            entry = flags.setdefault(
                str(flag_id), {"key": key, "archived": archived, "variants": []}
            )
            if variant is not None:
                entry["variants"].append(variant)
        segments = list(Segment.objects.order_by("key").values_list("key", flat=True))
        return JsonResponse(_options(segments, flags))

    def editor_parse_view(self, request: HttpRequest) -> HttpResponse:
        self._require_view(request)
        kind = request.POST.get("kind", "")
        text = request.POST.get("text", "")
        if kind not in ("rules", "prerequisites"):
            return JsonResponse({"error": "kind: rules or prerequisites"}, status=400)
        if len(text) > MAX_TEXT:
            return JsonResponse({"error": f"text: at most {MAX_TEXT} characters"}, status=400)
        return JsonResponse(editor_model(kind, text))
