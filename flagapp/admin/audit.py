"""The global audit log (``admin:flagapp_audit_log``, mounted on the flag admin by
:class:`flagapp.admin.history_pages.HistoryURLs`).

The audit log: every history row of flags, variants, states, rules, segments and
environments, every SDK key creation and revocation, and every rollout transition (who
started, paused, resumed or rolled back a rollout and why, and each automatic step: a pause
changes no flag state, so the state history alone would not show it), newest first,
filtered by flag, environment, user and date, paged on the page and exported as CSV or JSON lines by
streaming (each model's rows read with ``iterator()`` and merged by date: memory stays
bounded whatever the size).

"""

from __future__ import annotations

import csv
import datetime as dt
import heapq
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from flagapp.models import Environment, Flag, FlagState, Segment, TargetingRule, Variant

from .wording import (
    CHANGE,
    conditions_text,
    prerequisite_text,
    rule_text,
    serve_text,
    value_text,
)

__all__ = ["AuditFilters", "audit_log_view", "audit_rows"]

# --- the audit log ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    flag: str = ""
    environment: str = ""
    user: str = ""
    since: dt.date | None = None
    until: dt.date | None = None
    #: SDK key creations and revocations too (the page asks for ``view_sdkkey``)
    sdk_keys: bool = True
    #: rollout transitions too (the page asks for ``view_rolloutplan``)
    rollouts: bool = True


class AuditFilterForm(forms.Form):
    flag = forms.CharField(required=False, max_length=200, label="Flag key")
    environment = forms.ChoiceField(required=False, label="Environment")
    user = forms.CharField(required=False, max_length=150, label="User")
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="Until", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        env_field = self.fields["environment"]
        assert isinstance(env_field, forms.ChoiceField)
        env_field.choices = [("", "all")] + [
            (e.key, e.key) for e in Environment.objects.order_by("order", "key")
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "until: must not be before from.")
        return data

    def filters(self) -> AuditFilters:
        cd = self.cleaned_data
        return AuditFilters(
            flag=(cd.get("flag") or "").strip(),
            environment=cd.get("environment") or "",
            user=(cd.get("user") or "").strip(),
            since=cd.get("since"),
            until=cd.get("until"),
        )


#: Columns of the exports, in order.
COLUMNS = ("when", "user", "object", "flag", "environment", "change", "reason", "details")


def _window(f: AuditFilters, field: str = "history_date") -> dict[str, Any]:
    out: dict[str, Any] = {}
    tz = timezone.get_current_timezone()
    if f.since:
        out[f"{field}__gte"] = dt.datetime.combine(f.since, dt.time.min, tzinfo=tz)
    if f.until:
        out[f"{field}__lt"] = dt.datetime.combine(
            f.until + dt.timedelta(days=1), dt.time.min, tzinfo=tz
        )
    return out


def _sdk_key_sources(f: AuditFilters, env_id: int | None) -> list[Iterator[dict[str, Any]]]:
    """SDK keys have no history table: who created a key, when and why, and who revoked
    it, are on the key (``flagapp.services.sdk_keys``). One row per creation and one per
    revocation, newest first. The token is never stored; its hash is not shown either."""
    from flagapp.models import SdkKey

    def rows(event: str) -> Iterator[dict[str, Any]]:
        at, by, why = (("created_at", "created_by", "created_reason") if event == "created"
                       else ("revoked_at", "revoked_by", "revoke_reason"))  # fmt: skip
        username = f"{by}__{get_user_model().USERNAME_FIELD}"
        qs = SdkKey.objects.filter(**_window(f, at)).exclude(**{f"{at}__isnull": True})
        if env_id is not None:
            qs = qs.filter(environment_id=env_id)
        if f.user:
            qs = qs.filter(**{username: f.user})
        for key in (
            qs.select_related("environment", by)
            .only("public_id", "name", "scope", "environment__key", at, why, username)
            .order_by(f"-{at}", "-pk")
            .iterator(chunk_size=500)
        ):
            user = getattr(key, by)
            yield {
                "when": getattr(key, at),
                "user": user.get_username() if user else "system",
                "object": f"SDK key {key.public_id}",
                "flag": "",
                "environment": key.environment.key,
                "change": event,
                "reason": getattr(key, why) or "",
                "details": f"{key.name or '(no name)'}; scope {key.scope}",
            }

    return [rows("created"), rows("revoked")]


def _rollout_source(
    f: AuditFilters, env_id: int | None, flag_ids: list[int] | None
) -> Iterator[dict[str, Any]]:
    """Rollout transitions have their own table (``RolloutTransition``): one row each, with
    the person (``system`` for the scheduler's steps and automatic rollbacks), the reason
    and what was served before and after."""
    from flagapp.models import RolloutTransition
    from flagapp.rollouts.schedule import format_bps

    username = f"actor__{get_user_model().USERNAME_FIELD}"
    qs = RolloutTransition.objects.filter(**_window(f, "at"))
    if env_id is not None:
        qs = qs.filter(plan__environment_id=env_id)
    if flag_ids is not None:
        qs = qs.filter(plan__flag_id__in=flag_ids)
    if f.user:
        qs = qs.filter(**{username: f.user})
    for t in (
        qs.select_related("actor", "plan__flag", "plan__environment")
        .order_by("-at", "-pk")
        .iterator(chunk_size=500)
    ):
        plan = t.plan
        yield {
            "when": t.at,
            "user": t.actor.get_username() if t.actor else "system",
            "object": f"rollout plan {plan.pk}",
            "flag": plan.flag.key,
            "environment": plan.environment.key,
            "change": f"rollout {t.action}" + (" (automatic)" if t.automatic else ""),
            "reason": t.reason,
            "details": (
                f"{t.from_state.replace('_', ' ')} -> {t.to_state.replace('_', ' ')}; "
                f"{plan.treatment_variant} served to {format_bps(t.from_bps)} -> "
                f"{format_bps(t.to_bps)}"
            ),
        }


def _sources(f: AuditFilters) -> list[Iterator[dict[str, Any]]]:
    """One iterator per history table, each newest first, rows already as audit dicts."""
    env_keys = dict(Environment.objects.values_list("pk", "key"))
    env_id = next((pk for pk, key in env_keys.items() if key == f.environment), None)
    if f.environment and env_id is None:
        return []
    lookups = _Lookups()
    flag_ids: list[int] | None = None
    if f.flag:
        flag_ids = list(Flag.objects.filter(key=f.flag).values_list("pk", flat=True)) or list(
            Flag.history.filter(key=f.flag).values_list("id", flat=True).distinct()
        )
        if not flag_ids:
            return []
    common = _window(f)
    if f.user:
        user_model = get_user_model()
        common["history_user__" + user_model.USERNAME_FIELD] = f.user

    def rows(qs: Any, build: Any) -> Iterator[dict[str, Any]]:
        for h in (
            qs.filter(**common)
            .select_related("history_user")
            .order_by("-history_date", "-history_id")
            .iterator(chunk_size=500)
        ):
            yield build(h)

    def base(
        h: Any, obj: str, flag_id: int | None, env: int | None, details: str
    ) -> dict[str, Any]:
        return {
            "when": h.history_date,
            "user": h.history_user.get_username() if h.history_user else "system",
            "object": obj,
            "flag": lookups.flag_key(flag_id) if flag_id else "",
            "environment": env_keys.get(env, "") if env else "",
            "change": CHANGE.get(h.history_type, h.history_type),
            "reason": h.history_change_reason or "",
            "details": details,
        }

    sources: list[Iterator[dict[str, Any]]] = []
    flags_qs = Flag.history.all()
    variants_qs = Variant.history.all()
    states_qs = FlagState.history.all()
    rules_qs = TargetingRule.history.all()
    if flag_ids is not None:
        flags_qs = flags_qs.filter(id__in=flag_ids)
        variants_qs = variants_qs.filter(flag_id__in=flag_ids)
        states_qs = states_qs.filter(flag_id__in=flag_ids)
    if env_id is not None:
        states_qs = states_qs.filter(environment_id=env_id)
    if flag_ids is not None or env_id is not None:
        states = FlagState.history.all()
        if flag_ids is not None:
            states = states.filter(flag_id__in=flag_ids)
        if env_id is not None:
            states = states.filter(environment_id=env_id)
        rules_qs = rules_qs.filter(state_id__in=states.values("id"))
    if env_id is None:
        sources.append(
            rows(
                flags_qs,
                lambda h: base(
                    h, "flag", h.id, None,
                    f"{h.name}; {h.kind}, {h.flag_type}, risk {h.risk}"
                    f"{', archived' if h.archived else ''}",
                ),
            )
        )  # fmt: skip
        sources.append(
            rows(
                variants_qs,
                lambda h: base(h, "variant", h.flag_id, None, f"{h.key} = {value_text(h.value)}"),
            )
        )
    sources.append(
        rows(
            states_qs,
            lambda h: base(
                h, "state", h.flag_id, h.environment_id,
                f"version {h.version}: {'on' if h.enabled else 'off'}, fallthrough "
                f"{serve_text(h.fallthrough)}"
                + (f", needs {'; '.join(prerequisite_text(p) for p in h.prerequisites)}"
                   if h.prerequisites else ""),
            ),
        )
    )  # fmt: skip
    sources.append(
        rows(
            rules_qs,
            lambda h: base(
                h, "rule", *lookups.state(h.state_id),
                f"rule {h.rule_id} at position {h.order + 1}: "
                + rule_text(
                    {"when": h.conditions, "serve": h.serve, "description": h.description}
                ),
            ),
        )
    )  # fmt: skip
    if flag_ids is None and env_id is None:
        sources.append(
            rows(
                Segment.history.all(),
                lambda h: base(
                    h, f"segment {h.key}", None, None,
                    f"{len(h.include or [])} included, {len(h.exclude or [])} excluded, "
                    f"conditions: {conditions_text(h.conditions)}",
                ),
            )
        )  # fmt: skip
    if flag_ids is None and f.sdk_keys:
        sources += _sdk_key_sources(f, env_id)
    if f.rollouts:
        sources.append(_rollout_source(f, env_id, flag_ids))
    if flag_ids is None:
        envs_qs = Environment.history.all()
        if env_id is not None:
            envs_qs = envs_qs.filter(id=env_id)
        sources.append(
            rows(
                envs_qs,
                lambda h: base(
                    h, "environment", None, h.id,
                    f"{h.name}{', protected' if h.protected else ''}",
                ),
            )
        )  # fmt: skip
    return sources


class _Lookups:
    """Flag keys and (flag, environment) of states for audit rows: the live rows in one
    query each, a history row only for what was deleted since (so a page does not scan the
    whole history to name its rows)."""

    def __init__(self) -> None:
        self._flags: dict[int, str] | None = None
        self._states: dict[int, tuple[int | None, int | None]] | None = None

    def flag_key(self, flag_id: int) -> str:
        if self._flags is None:
            self._flags = dict(Flag.objects.values_list("pk", "key"))
        if flag_id not in self._flags:
            old = Flag.history.filter(id=flag_id).values_list("key", flat=True).first()
            self._flags[flag_id] = old or ""
        return self._flags[flag_id]

    def state(self, state_id: int) -> tuple[int | None, int | None]:
        if self._states is None:
            self._states = {
                pk: (fid, eid)
                for pk, fid, eid in FlagState.objects.values_list("pk", "flag_id", "environment_id")
            }
        if state_id not in self._states:
            old = (
                FlagState.history.filter(id=state_id)
                .values_list("flag_id", "environment_id")
                .first()
            )
            self._states[state_id] = (old[0], old[1]) if old else (None, None)
        return self._states[state_id]


def audit_rows(f: AuditFilters) -> Iterator[dict[str, Any]]:
    """Every matching history row, newest first, streamed (a k-way merge of one
    ``iterator()`` per history table: at most a chunk per table in memory)."""
    return heapq.merge(*_sources(f), key=lambda r: r["when"], reverse=True)


def _csv_stream(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_csv_cell(row, c) for c in COLUMNS])
        if buf.tell() > 16_384:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _csv_cell(row: Mapping[str, Any], column: str) -> str:
    value = row[column]
    text = value.isoformat() if isinstance(value, dt.datetime) else str(value)
    # A spreadsheet runs a cell starting with = + - @ as a formula: keep it text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _jsonl_stream(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield (
            json.dumps(
                {c: (row[c].isoformat() if c == "when" else row[c]) for c in COLUMNS},
                ensure_ascii=False,
            )
            + "\n"
        )


# --- the page -------------------------------------------------------------------------------

PAGE_SIZE = 100


def audit_log_view(model_admin: Any, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The audit log page (``admin:flagapp_audit_log``, on the flag admin): filters, a page
    of rows, or a streamed export."""
    if not (
        model_admin.has_view_permission(request)
        and (
            request.user.has_perm("flagapp.view_flagstate")
            or request.user.has_perm("flagapp.change_flagstate")
        )
    ):
        raise PermissionDenied
    form = AuditFilterForm(request.GET or None)
    filters: AuditFilters | None = AuditFilters()
    if form.is_bound:
        filters = form.filters() if form.is_valid() else None
    if filters is not None and not (
        request.user.has_perm("flagapp.view_sdkkey")
        or request.user.has_perm("flagapp.change_sdkkey")
    ):
        filters = replace(filters, sdk_keys=False)
    if filters is not None and not (
        request.user.has_perm("flagapp.view_rolloutplan")
        or request.user.has_perm("flagapp.change_rolloutplan")
    ):
        filters = replace(filters, rollouts=False)
    export = request.GET.get("export")
    if filters is not None and export in ("csv", "jsonl"):
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        if export == "csv":
            response = StreamingHttpResponse(
                _csv_stream(audit_rows(filters)), content_type="text/csv; charset=utf-8"
            )
        else:
            response = StreamingHttpResponse(
                _jsonl_stream(audit_rows(filters)),
                content_type="application/x-ndjson; charset=utf-8",
            )
        name = f"flagapp-audit-{stamp}.{export}"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    page = max(1, _int(request.GET.get("page")))
    rows: list[dict[str, Any]] = []
    more = False
    if filters is not None:
        for i, row in enumerate(audit_rows(filters)):
            if i < (page - 1) * PAGE_SIZE:
                continue
            if len(rows) == PAGE_SIZE:
                more = True
                break
            rows.append(row)
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("export", None)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Audit log",
        "opts": Flag._meta,
        "form": form,
        "rows": rows,
        "page": page,
        "more": more,
        "query": query.urlencode(),
    }
    return TemplateResponse(request, "admin/flagapp/audit_log.html", context)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1
