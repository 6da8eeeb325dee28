"""The playground: what does this context get in this environment, and why?

Why in the admin: "what does user X get?" is the first question of anyone debugging a flag,
and answering it with the CLI means exporting a snapshot and writing JSON lines. The
playground evaluates the environment's **published snapshot** (what every SDK and server
process is served, not the unsaved or unpublished state) with the engine's explainer
(``openfeature_provider.engine.explain``) — the very rows ``flagapp-eval --explain`` prints,
byte for byte in the JSON-lines download — and shows them in words: the deciding rule,
each condition with the value read from the context, segment membership and why,
prerequisites, and where the context fell in a percentage split.

The context is typed or pasted as JSON, or taken from the environment's recently sampled
contexts (``flagapp.models.ContextSample``, what ``flagapp.sampling`` keeps for the
blast-radius preview). A pending change request can be evaluated too: its change is
applied in a rolled-back transaction (``flagapp.governance.proposals``) and the flags it
would change for this context are shown before and after.

No JavaScript: one form that posts back (CSRF-protected); picking a sample is a submit
button. Permission: the user must see flags and their states (``view_flag`` and
``view_flagstate``, or the change permissions), since the page reveals every rule's outcome
and sampled contexts; proposals additionally need to see change requests.

Mounted by :class:`PlaygroundURLs` on the snapshots admin (``admin:flagapp_playground``,
``/admin/flagapp/snapshot/playground/``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from flagapp.exceptions import FlagappError
from flagapp.models import ChangeRequest, ContextSample, Environment, Snapshot
from openfeature_provider.engine import ParseError, Ruleset, parse_ruleset
from openfeature_provider.engine.explain import Explainer, explain_row, to_json_line

from .syntax import format_conditions, format_serve

__all__ = ["PlaygroundForm", "PlaygroundURLs", "can_use_playground", "playground_view"]

#: Rows shown on the page (every flag is in the JSON-lines download).
MAX_ROWS = 200
#: Recently sampled contexts offered per environment.
SAMPLES_SHOWN = 15
#: Largest context accepted, in characters.
MAX_CONTEXT_CHARS = 65_536

DEFAULT_CONTEXT = '{\n  "targetingKey": "user-1"\n}'


def can_use_playground(user: Any) -> bool:
    """Seeing the playground's rows means seeing every flag and state of an environment."""
    sees_flags = user.has_perm("flagapp.view_flag") or user.has_perm("flagapp.change_flag")
    sees_states = user.has_perm("flagapp.view_flagstate") or user.has_perm(
        "flagapp.change_flagstate"
    )
    return bool(user.is_active and user.is_staff and sees_flags and sees_states)


def can_see_change_requests(user: Any) -> bool:
    return bool(
        user.has_perm("flagapp.view_changerequest")
        or user.has_perm("flagapp.approve_changerequest")
    )


class PlaygroundForm(forms.Form):
    environment = forms.ChoiceField(label="Environment")
    context = forms.CharField(
        label="Context (JSON object)",
        widget=forms.Textarea(attrs={"rows": 8, "cols": 70, "spellcheck": "false"}),
        initial=DEFAULT_CONTEXT,
        help_text='The evaluation context, e.g. {"targetingKey": "user-1", "plan": "pro"}.',
    )
    flag = forms.CharField(
        label="Only flags containing",
        required=False,
        max_length=200,
        help_text=f"Optional; the page shows at most {MAX_ROWS} flags.",
    )
    change_request = forms.TypedChoiceField(
        label="Also evaluate a pending change request",
        required=False,
        coerce=int,
        empty_value=None,
    )

    def __init__(
        self,
        *args: Any,
        environments: list[Environment],
        change_requests: list[ChangeRequest],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        env_field = self.fields["environment"]
        assert isinstance(env_field, forms.ChoiceField)
        env_field.choices = [(e.key, f"{e.name} ({e.key})") for e in environments]
        cr_field = self.fields["change_request"]
        assert isinstance(cr_field, forms.ChoiceField)
        cr_field.choices = [("", "— none —")] + [
            (str(cr.pk), f"#{cr.pk} {cr.flag_key}"
             f"{' in ' + cr.environment_key if cr.environment_key else ''}: {cr.reason[:60]}")
            for cr in change_requests
        ]  # fmt: skip

    def clean_context(self) -> dict[str, Any]:
        text = str(self.cleaned_data["context"])
        if len(text) > MAX_CONTEXT_CHARS:
            raise forms.ValidationError(
                f"context: at most {MAX_CONTEXT_CHARS:,} characters (got {len(text):,})."
            )
        try:
            value = json.loads(text)
        except RecursionError:
            raise forms.ValidationError("context: not valid JSON: nested too deeply.") from None
        except ValueError as exc:
            raise forms.ValidationError(f"context: not valid JSON: {exc}.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError(
                f"context: must be a JSON object ({{...}}), got {type(value).__name__}."
            )
        return value


class PlaygroundURLs:
    """Mixin for the ModelAdmin that mounts the playground (the snapshots admin)."""

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view  # type: ignore[attr-defined]

        def playground(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
            return playground_view(request, self)

        return [
            path("playground/", view(playground), name="flagapp_playground"),
            *super().get_urls(),  # type: ignore[misc]
        ]


def published_ruleset(env: Environment) -> tuple[Snapshot | None, Ruleset | None]:
    """The latest published snapshot of ``env`` and its parsed ruleset. The ruleset this
    process already holds is reused when it is that very snapshot (parsing 10,000 flags
    costs more than the rest of the page)."""
    from flagapp.evaluation import cache
    from flagapp.publishing import latest

    snap = latest(env.key)
    if snap is None:
        return None, None
    held = cache.current_ruleset(env.key)
    if held is not None and held.version == snap.version and held.etag == snap.etag:
        return snap, held
    return snap, parse_ruleset(snap.document)


def _samples(env: Environment | None) -> list[dict[str, Any]]:
    if env is None:
        return []
    rows = ContextSample.objects.filter(environment=env).order_by("-id")
    out = []
    seen: set[str] = set()
    for sample in rows[: SAMPLES_SHOWN * 4]:
        dedup = sample.targeting_key or json.dumps(sample.context, sort_keys=True)
        if dedup in seen:
            continue
        seen.add(dedup)
        text = json.dumps(sample.context, ensure_ascii=False, sort_keys=True)
        out.append(
            {
                "id": sample.pk,
                "targeting_key": sample.targeting_key,
                "source": sample.source,
                "flag_key": sample.flag_key,
                "recorded_at": sample.recorded_at,
                "preview": text if len(text) <= 120 else text[:119] + "…",
            }
        )
        if len(out) >= SAMPLES_SHOWN:
            break
    return out


def _open_change_requests(user: Any) -> list[ChangeRequest]:
    if not can_see_change_requests(user):
        return []
    return list(
        ChangeRequest.objects.filter(
            status__in=(ChangeRequest.STATUS_PENDING, ChangeRequest.STATUS_APPROVED)
        ).order_by("-created_at")[:50]
    )


def playground_view(request: HttpRequest, model_admin: Any) -> HttpResponse | StreamingHttpResponse:
    if not can_use_playground(request.user):
        raise PermissionDenied("the playground needs permission to view flags and flag states")
    environments = list(Environment.objects.order_by("order", "key"))
    crs = _open_change_requests(request.user)
    data: Any = None
    sample_id = None
    if request.method == "POST":
        data = request.POST.copy()
        sample_id = data.get("use_sample")
    env_key = (data if data is not None else request.GET).get("environment") or (
        environments[0].key if environments else ""
    )
    initial = {"environment": env_key, "flag": request.GET.get("flag", "")}
    form = PlaygroundForm(data, environments=environments, change_requests=crs, initial=initial)
    env = next((e for e in environments if e.key == env_key), None)
    sample_error = ""
    if sample_id and env is not None:
        sample = ContextSample.objects.filter(pk=_int(sample_id), environment=env).first()
        if sample is None:
            sample_error = "That sampled context is no longer stored for this environment."
        else:
            data["context"] = json.dumps(sample.context, indent=2, ensure_ascii=False)
            form = PlaygroundForm(data, environments=environments, change_requests=crs)
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": "Playground",
        "opts": model_admin.model._meta,
        "form": form,
        "samples": _samples(env),
        "sample_error": sample_error,
        "environment": env,
        "max_rows": MAX_ROWS,
    }
    if data is not None and form.is_valid():
        env = next(e for e in environments if e.key == form.cleaned_data["environment"])
        snap, ruleset = published_ruleset(env)
        context["environment"] = env
        context["snapshot"] = snap
        if ruleset is not None:
            keys = _keys(ruleset, form.cleaned_data["flag"])
            ctx = form.cleaned_data["context"]
            if "_jsonl" in data:
                return _download(ruleset, keys, ctx, env, snap)
            explainer = Explainer(ruleset)
            rows = [explain_row(ruleset, key, ctx, explainer=explainer) for key in keys[:MAX_ROWS]]
            context["rows"] = [_display(row, ruleset) for row in rows]
            context["total_flags"] = len(keys)
            cr_id = form.cleaned_data.get("change_request")
            if cr_id is not None:
                context["proposal"] = _proposal(cr_id, crs, env, ruleset, ctx)
    return TemplateResponse(request, "admin/flagapp/playground.html", context)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _keys(ruleset: Ruleset, needle: str) -> list[str]:
    needle = (needle or "").strip()
    return [k for k in ruleset.flags if needle in k] if needle else list(ruleset.flags)


def _download(
    ruleset: Ruleset, keys: list[str], ctx: Mapping[str, Any], env: Environment, snap: Any
) -> StreamingHttpResponse:
    """Every selected flag as ``flagapp-eval --explain`` lines, streamed (one row at a
    time: 10,000 flags never sit in memory as one string)."""
    explainer = Explainer(ruleset)

    def lines() -> Iterator[str]:
        for key in keys:
            yield to_json_line(explain_row(ruleset, key, ctx, explainer=explainer)) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="playground-{env.key}-v{snap.version}.jsonl"'
    )
    return response


def _proposal(
    cr_id: int,
    crs: list[ChangeRequest],
    env: Environment,
    before: Ruleset,
    ctx: Mapping[str, Any],
) -> dict[str, Any]:
    """The flags a change request would change for this context, before and after."""
    from flagapp.governance.proposals import proposed_document

    cr = next((c for c in crs if c.pk == cr_id), None)
    if cr is None:
        return {"error": "That change request is no longer open."}
    out: dict[str, Any] = {"cr": cr}
    if cr.environment_key and cr.environment_key != env.key:
        out["error"] = (
            f"Change request #{cr.pk} is for environment {cr.environment_key}; "
            f"pick that environment to evaluate it."
        )
        return out
    try:
        after = parse_ruleset(proposed_document(cr.change, env))
    except (FlagappError, ParseError) as exc:
        out["error"] = f"It cannot be applied as it stands: {exc}"
        return out
    b_explainer, a_explainer = Explainer(before), Explainer(after)
    changed = []
    for key in list(dict.fromkeys([*after.flags, *before.flags])):
        b = explain_row(before, key, ctx, explainer=b_explainer)
        a = explain_row(after, key, ctx, explainer=a_explainer)
        if key == cr.flag_key or to_json_line(b) != to_json_line(a):
            changed.append(
                {
                    "key": key,
                    "before": _display(b, before),
                    "after": _display(a, after),
                    "differs": _outcome(b) != _outcome(a),
                }
            )
    out["rows"] = changed
    out["moved"] = sum(1 for r in changed if r["differs"])
    return out


def _outcome(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the caller is served (a new reason for the same variant moves nobody)."""
    return (_json(row["value"]), row["variant"], row["errorCode"])


# --- rows in words ---------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _display(row: dict[str, Any], ruleset: Ruleset) -> dict[str, Any]:
    """A row for the template: the raw CLI line plus the explanation as sentences."""
    why = row["why"]
    flag = ruleset.flags.get(row["flag"])
    raw = flag_doc(ruleset, row["flag"])
    lines: list[dict[str, Any]] = []
    decided = why.get("decided")
    if decided == "not-found":
        lines.append({"text": "not in this snapshot (archived, deleted or never created)"})
    elif decided == "disabled":
        lines.append({"text": "the flag is off in this environment: the caller's default"})
    for pre in why.get("prerequisites", []):
        lines.append(
            {
                "ok": pre["met"],
                "text": f"prerequisite {pre['flag']} served {pre['got'] or 'the default'} "
                f"({pre['reason']}); needs {', '.join(pre['variants'])}",
            }
        )
    rules_doc = {r.get("id"): r for r in raw.get("rules", [])}
    for rule in why.get("rules", []):
        if rule["matched"] is None:
            lines.append({"text": f"rule {rule['id']}: not tried (an earlier rule decided)"})
            continue
        serve = format_serve(rules_doc.get(rule["id"], {}).get("serve"))
        conds = rule.get("conditions", [])
        head = f"rule {rule['id']}" + (f" (serves {serve})" if serve else "")
        if not conds:
            lines.append({"ok": True, "text": f"{head}: no conditions, matches everyone"})
        else:
            verdict = "matched" if rule["matched"] else "did not match"
            lines.append({"ok": rule["matched"], "text": f"{head}: {verdict}"})
        for cond in conds:
            lines.append({"ok": cond["matched"], "indent": True, "text": _condition_text(cond)})
    for key, seg in why.get("segments", {}).items():
        by = {
            "include": "the targeting key is in its include list",
            "exclude": "the targeting key is in its exclude list",
            "conditions": "by its conditions",
            "no conditions": "no include entry and no conditions",
        }.get(seg["by"], seg["by"])
        verdict = "member" if seg["member"] else "not a member"
        lines.append({"ok": seg["member"], "text": f"segment {key}: {verdict} ({by})"})
        for cond in seg.get("conditions", []):
            lines.append({"ok": cond["matched"], "indent": True, "text": _condition_text(cond)})
    if decided == "fallthrough":
        serve = format_serve(raw.get("fallthrough")) or "the caller's default"
        head = "no rule matched" if why.get("rules") else "no rules"
        lines.append({"text": f"{head}: the fallthrough ({serve})"})
    roll = why.get("rollout")
    if roll:
        split = ", ".join(f"{part['variant']} below {part['upTo']:g}%" for part in roll["split"])
        if "position" in roll:
            text = (
                f"split by {roll['bucketBy']} = {_json(roll['value'])}: position "
                f"{roll['position']:.4f}% → {roll['variant']} ({split})"
            )
        else:
            text = f"split by {roll['bucketBy']}: the context has no usable value ({split})"
        lines.append({"text": text})
    return {
        "flag": row["flag"],
        "kind": flag.kind if flag is not None else "",
        "value": _json(row["value"]),
        "variant": row["variant"],
        "reason": row["reason"],
        "error": row["errorCode"],
        "error_message": row["errorMessage"],
        "rule": row["rule"],
        "lines": lines,
        "line": to_json_line(row),
    }


def flag_doc(ruleset: Ruleset, key: str) -> dict[str, Any]:
    flags = ruleset.raw.get("flags") if isinstance(ruleset.raw, Mapping) else None
    doc = flags.get(key) if isinstance(flags, Mapping) else None
    return dict(doc) if isinstance(doc, Mapping) else {}


def _condition_text(cond: Mapping[str, Any]) -> str:
    spec = {k: cond[k] for k in ("attr", "op", "values", "negate", "case_insensitive") if k in cond}
    text = format_conditions([spec])
    if "actual" in cond:
        actual = cond["actual"]
        shown = "absent" if actual is None else _json(actual)
        text += f" — context: {shown}"
    return text
