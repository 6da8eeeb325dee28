"""Readable history: a flag's timeline, the global audit log and "restore this version".

Why: django-simple-history keeps one row per saved model row, so the stock history page of
a flag shows the flag's own fields only, and a rule change is a separate row holding
Python dicts. A flag manager asks "what changed, who did it, and why" across the flag, its
variants and every environment's state and rules. Here:

- :func:`flag_timeline` rebuilds every version of each of the flag's states (the state
  row's history plus its rules' history, replayed in order) and describes each version
  against the one before in words — "rule pros added: plan in pro, team → on",
  "fallthrough: on 10% · off 90% → on 50% · off 50%", "turned off" — next to the flag's
  own field changes and its variant changes; each entry with who, when and why.
- :func:`restore_state` puts a state back as it was at one version, through
  ``services.update_flag_state`` (so approval in protected environments, the version check,
  history and publishing apply), with the reason "restore of version N: <why>"; a change
  needing approval becomes a change request like any other admin save.
- the audit log: every history row of flags, variants, states, rules, segments and
  environments, newest first, filtered by flag, environment, user and date, paged on the
  page and exported as CSV or JSON lines by streaming (each model's rows read with
  ``iterator()`` and merged by date: memory stays bounded whatever the size).

Mounted on the flag admin by :class:`AuditURLs`: ``admin:flagapp_flag_timeline``,
``admin:flagapp_flag_restore``, ``admin:flagapp_audit_log``.
"""

from __future__ import annotations

import csv
import datetime as dt
import heapq
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from flagapp import services
from flagapp.exceptions import ApprovalRequired, FlagappError, FlagValidationError
from flagapp.models import Environment, Flag, FlagState, Segment, TargetingRule, Variant

from .base import messages_of
from .forms import reason_field
from .syntax import format_conditions

__all__ = [
    "AuditURLs",
    "StateVersion",
    "audit_rows",
    "describe_state_change",
    "flag_timeline",
    "restore_state",
    "serve_text",
    "state_versions",
]

_CHANGE = {"+": "created", "~": "changed", "-": "deleted"}


# --- words ----------------------------------------------------------------------------------


def percent(weight: int, total: int) -> str:
    """``2500`` of ``10000`` -> ``"25%"``; two decimals at most (``33.33%``)."""
    if total <= 0:
        return "0%"
    text = f"{weight * 100 / total:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def serve_text(serve: Mapping[str, Any] | None) -> str:
    """A serve in words: ``on``, ``on 10% · off 90%`` (plus ``by plan``, salt, hash)."""
    if not serve:
        return "the caller's default"
    if serve.get("variant") is not None:
        return str(serve["variant"])
    rollout = serve.get("rollout") or {}
    weights = [
        (str(w.get("variant")), int(w.get("weight") or 0)) for w in rollout.get("weights", [])
    ]
    total = sum(w for _, w in weights)
    text = " · ".join(f"{v} {percent(w, total)}" for v, w in weights)
    if rollout.get("bucket_by") not in (None, "targetingKey"):
        text += f" (by {rollout['bucket_by']})"
    if rollout.get("salt") is not None:
        text += f" (salt {rollout['salt']})"
    if rollout.get("hash") is not None:
        text += f" (hash {rollout['hash']})"
    return text


def conditions_text(conditions: Sequence[Mapping[str, Any]] | None) -> str:
    if not conditions:
        return "everyone"
    return " and ".join(format_conditions([c]) for c in conditions)


def prerequisite_text(pre: Mapping[str, Any]) -> str:
    return f"{pre.get('flag')} is {' or '.join(str(v) for v in pre.get('variants') or [])}"


def _value_text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# --- state versions -------------------------------------------------------------------------


@dataclass
class StateVersion:
    """One version of a flag's state in one environment, rebuilt from the history."""

    history_id: int
    state_id: int
    environment_id: int
    version: int
    when: dt.datetime
    user: Any
    reason: str
    change: str
    enabled: bool
    fallthrough: Any
    prerequisites: list[Any]
    #: ``[{"id", "description", "when", "serve"}]`` in evaluation order
    rules: list[dict[str, Any]] = field(default_factory=list)

    def as_params(self) -> dict[str, Any]:
        """What ``services.update_flag_state`` takes to put this version back."""
        return {
            "enabled": self.enabled,
            "fallthrough": self.fallthrough,
            "prerequisites": list(self.prerequisites or []),
            "rules": [dict(r) for r in self.rules],
        }


def state_versions(flag_id: int, environment_id: int | None = None) -> list[StateVersion]:
    """Every version of the flag's states (one environment, or all), oldest first.

    The services save the state row (version + 1) and then its rules in one transaction,
    so the rules of a version are the rule history rows replayed up to the next version's
    state row (two queries per call, whatever the number of versions).
    """
    states = FlagState.history.filter(flag_id=flag_id)
    if environment_id is not None:
        states = states.filter(environment_id=environment_id)
    state_rows = list(states.select_related("history_user").order_by("history_date", "history_id"))
    state_ids = {r.id for r in state_rows}
    rule_rows = list(
        TargetingRule.history.filter(state_id__in=state_ids).order_by("history_date", "history_id")
    )
    out: list[StateVersion] = []
    for state_id in sorted(state_ids):
        mine = [r for r in state_rows if r.id == state_id]
        rules_of = [r for r in rule_rows if r.state_id == state_id]
        live: dict[int, Any] = {}
        j = 0
        for i, row in enumerate(mine):
            cutoff = mine[i + 1].history_date if i + 1 < len(mine) else None
            while j < len(rules_of) and (cutoff is None or rules_of[j].history_date < cutoff):
                rule = rules_of[j]
                if rule.history_type == "-":
                    live.pop(rule.id, None)
                else:
                    live[rule.id] = rule
                j += 1
            ordered = sorted(live.values(), key=lambda r: (r.order, r.rule_id))
            out.append(
                StateVersion(
                    history_id=row.history_id,
                    state_id=state_id,
                    environment_id=row.environment_id,
                    version=row.version,
                    when=row.history_date,
                    user=row.history_user,
                    reason=row.history_change_reason or "",
                    change=_CHANGE.get(row.history_type, row.history_type),
                    enabled=row.enabled,
                    fallthrough=row.fallthrough,
                    prerequisites=list(row.prerequisites or []),
                    rules=[
                        {
                            "id": r.rule_id,
                            "description": r.description,
                            "when": r.conditions,
                            "serve": r.serve,
                        }
                        for r in ordered
                    ],
                )
            )
    out.sort(key=lambda v: (v.when, v.history_id))
    return out


def describe_state_change(before: StateVersion | None, after: StateVersion) -> list[str]:
    """What changed between two versions of a state, one sentence per change."""
    lines: list[str] = []
    if before is None:
        lines = [f"created ({'on' if after.enabled else 'off'})"]
        if after.fallthrough:
            lines.append(f"fallthrough: {serve_text(after.fallthrough)}")
        lines += [f"rule {r['id']} added: {_rule_text(r)}" for r in after.rules]
        return lines
    if before.enabled != after.enabled:
        lines.append("turned on" if after.enabled else "turned off (everyone gets the default)")
    if before.fallthrough != after.fallthrough:
        lines.append(
            f"fallthrough: {serve_text(before.fallthrough)} → {serve_text(after.fallthrough)}"
        )
    old_pre = {p.get("flag"): p for p in before.prerequisites}
    new_pre = {p.get("flag"): p for p in after.prerequisites}
    for key, pre in new_pre.items():
        if key not in old_pre:
            lines.append(f"prerequisite added: {prerequisite_text(pre)}")
        elif old_pre[key] != pre:
            lines.append(
                f"prerequisite changed: {prerequisite_text(old_pre[key])} → "
                f"{prerequisite_text(pre)}"
            )
    lines += [
        f"prerequisite removed: {prerequisite_text(pre)}"
        for key, pre in old_pre.items()
        if key not in new_pre
    ]
    old_rules = {r["id"]: (i, r) for i, r in enumerate(before.rules)}
    new_rules = {r["id"]: (i, r) for i, r in enumerate(after.rules)}
    for rule_id, (pos, rule) in new_rules.items():
        if rule_id not in old_rules:
            lines.append(f"rule {rule_id} added at position {pos + 1}: {_rule_text(rule)}")
            continue
        old_pos, old = old_rules[rule_id]
        if old["when"] != rule["when"]:
            lines.append(
                f"rule {rule_id} conditions: {conditions_text(old['when'])} → "
                f"{conditions_text(rule['when'])}"
            )
        if old["serve"] != rule["serve"]:
            lines.append(
                f"rule {rule_id} serves: {serve_text(old['serve'])} → {serve_text(rule['serve'])}"
            )
        if (old.get("description") or "") != (rule.get("description") or ""):
            lines.append(
                f"rule {rule_id} description: “{old.get('description') or ''}” → "
                f"“{rule.get('description') or ''}”"
            )
        if old_pos != pos and _relative_order_changed(before.rules, after.rules, rule_id):
            lines.append(f"rule {rule_id} moved from position {old_pos + 1} to {pos + 1}")
    lines += [
        f"rule {rule_id} removed (was: {_rule_text(old)})"
        for rule_id, (_, old) in old_rules.items()
        if rule_id not in new_rules
    ]
    return lines or ["saved without changes"]


def _relative_order_changed(
    before: list[dict[str, Any]], after: list[dict[str, Any]], rule_id: str
) -> bool:
    """Whether ``rule_id`` "moved": it is outside the longest run of rules kept on both
    sides in the same relative order (A, B, C -> B, C, A moves A, not B and C; adding a
    rule above another moves nothing)."""
    kept = {r["id"] for r in before} & {r["id"] for r in after}
    old = [r["id"] for r in before if r["id"] in kept]
    new = [r["id"] for r in after if r["id"] in kept]
    return rule_id not in _common_order(old, new)


def _common_order(old: list[str], new: list[str]) -> set[str]:
    """The ids of a longest common subsequence of ``old`` and ``new`` (rule lists are
    short: a quadratic table is fine). On a tie the rule that kept its place in the old
    order is the one kept, so a swap reports the rule that was moved up."""
    n, m = len(old), len(new)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i][j] = (
                table[i + 1][j + 1] + 1
                if old[i] == new[j]
                else max(table[i + 1][j], table[i][j + 1])
            )
    out: set[str] = set()
    i = j = 0
    while i < n and j < m:
        if old[i] == new[j]:
            out.add(old[i])
            i += 1
            j += 1
        elif table[i][j + 1] >= table[i + 1][j]:
            j += 1
        else:
            i += 1
    return out


def _rule_text(rule: Mapping[str, Any]) -> str:
    text = f"{conditions_text(rule.get('when'))} → {serve_text(rule.get('serve'))}"
    if rule.get("description"):
        text += f" (“{rule['description']}”)"
    return text


# --- the flag's timeline --------------------------------------------------------------------

_FLAG_FIELDS = (
    ("name", "name"),
    ("description", "description"),
    ("flag_type", "type"),
    ("risk", "risk"),
    ("expires_on", "expires"),
    ("tags", "tags"),
    ("archived", "archived"),
)


def flag_timeline(flag: Flag, environment_id: int | None = None) -> list[dict[str, Any]]:
    """Newest first: ``{"when", "user", "reason", "where", "lines", "restore"?}`` entries
    for the flag's fields and variants (grouped per save) and each state version."""
    envs = {e.pk: e for e in Environment.objects.all()}
    entries: list[dict[str, Any]] = []
    if environment_id is None:
        entries += _flag_entries(flag)
    previous: dict[int, StateVersion] = {}
    latest_version: dict[int, int] = dict(
        FlagState.objects.filter(flag=flag).values_list("pk", "version")
    )
    for version in state_versions(flag.pk, environment_id):
        before = previous.get(version.state_id)
        env = envs.get(version.environment_id)
        entry: dict[str, Any] = {
            "when": version.when,
            "user": version.user,
            "reason": version.reason,
            "where": env.key if env else f"environment {version.environment_id}",
            "kind": "state",
            "version": version.version,
            "lines": describe_state_change(before, version),
        }
        if (
            env is not None
            and version.state_id in latest_version
            and latest_version[version.state_id] != version.version
        ):
            entry["restore"] = version.history_id
        entries.append(entry)
        previous[version.state_id] = version
    entries.sort(key=lambda e: e["when"], reverse=True)
    return entries


def _flag_entries(flag: Flag) -> list[dict[str, Any]]:
    """The flag's own changes and its variants', one entry per save (rows written by one
    save share the user and the reason and are seconds apart at most)."""
    rows: list[tuple[dt.datetime, Any, str, str]] = []
    prev = None
    for h in (
        Flag.history.filter(id=flag.pk)
        .select_related("history_user", "owner")
        .order_by("history_date", "history_id")
    ):
        if prev is None:
            text = f"flag created ({h.kind}, {h.flag_type}, owner {h.owner or '—'})"
        else:
            changes = [
                f"{label}: {_value_text(getattr(prev, name))} → {_value_text(getattr(h, name))}"
                for name, label in _FLAG_FIELDS
                if getattr(prev, name) != getattr(h, name)
            ]
            if prev.owner_id != h.owner_id:
                changes.append(f"owner: {prev.owner or '—'} → {h.owner or '—'}")
            text = "; ".join(changes) if changes else ""
        if h.history_type == "-":
            text = "flag deleted"
        if text:
            rows.append((h.history_date, h.history_user, h.history_change_reason or "", text))
        prev = h
    variants: dict[int, Any] = {}
    for v in (
        Variant.history.filter(flag_id=flag.pk)
        .select_related("history_user")
        .order_by("history_date", "history_id")
    ):
        old = variants.get(v.id)
        if v.history_type == "-":
            text = f"variant {v.key} removed (was {_value_text(v.value)})"
            variants.pop(v.id, None)
        elif old is None:
            text = f"variant {v.key} added: {_value_text(v.value)}"
            variants[v.id] = v
        else:
            parts = []
            if old.value != v.value:
                parts.append(f"value {_value_text(old.value)} → {_value_text(v.value)}")
            if old.key != v.key:
                parts.append(f"renamed from {old.key}")
            if (old.description or "") != (v.description or ""):
                parts.append("description changed")
            if old.order != v.order:
                parts.append(f"moved to position {v.order + 1}")
            text = f"variant {v.key}: {', '.join(parts)}" if parts else ""
            variants[v.id] = v
        if text:
            rows.append((v.history_date, v.history_user, v.history_change_reason or "", text))
    rows.sort(key=lambda r: r[0])
    entries: list[dict[str, Any]] = []
    for when, user, reason, text in rows:
        last = entries[-1] if entries else None
        if (
            last is not None
            and last["user"] == user
            and last["reason"] == reason
            and (when - last["when"]).total_seconds() < 5
        ):
            last["lines"].append(text)
            continue
        entries.append(
            {"when": when, "user": user, "reason": reason, "where": "flag", "kind": "flag",
             "lines": [text]}
        )  # fmt: skip
    return entries


# --- restore ----------------------------------------------------------------------------------


def restore_state(
    flag: Flag, history_id: int, *, actor: Any, reason: str
) -> tuple[StateVersion, FlagState]:
    """Put the flag's state back as it was at the history entry ``history_id``, through the
    services. Raises what ``services.update_flag_state`` raises (ApprovalRequired in a
    protected environment, VersionConflict, FlagValidationError when, e.g., a variant the
    version served no longer exists)."""
    row = FlagState.history.filter(history_id=history_id, flag_id=flag.pk).first()
    if row is None:
        raise FlagValidationError({"__all__": [f"no history entry {history_id} for this flag"]})
    target = next(
        v for v in state_versions(flag.pk, row.environment_id) if v.history_id == history_id
    )
    env = Environment.objects.get(pk=row.environment_id)
    current = FlagState.objects.get(flag=flag, environment=env)
    state = services.update_flag_state(
        flag,
        env,
        actor=actor,
        reason=f"restore of version {target.version}: {reason}",
        expected_version=current.version,
        **target.as_params(),
    )
    return target, state


# --- the audit log ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    flag: str = ""
    environment: str = ""
    user: str = ""
    since: dt.date | None = None
    until: dt.date | None = None


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


def _window(f: AuditFilters) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tz = timezone.get_current_timezone()
    if f.since:
        out["history_date__gte"] = dt.datetime.combine(f.since, dt.time.min, tzinfo=tz)
    if f.until:
        out["history_date__lt"] = dt.datetime.combine(
            f.until + dt.timedelta(days=1), dt.time.min, tzinfo=tz
        )
    return out


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
            "change": _CHANGE.get(h.history_type, h.history_type),
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
                lambda h: base(h, "variant", h.flag_id, None, f"{h.key} = {_value_text(h.value)}"),
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
                + _rule_text(
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


# --- views ----------------------------------------------------------------------------------

PAGE_SIZE = 100


class RestoreForm(forms.Form):
    reason = reason_field()


class AuditURLs:
    """Mixin for the flag admin: the timeline, restore and the audit log."""

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view  # type: ignore[attr-defined]
        return [
            path("audit-log/", view(self.audit_log_view), name="flagapp_audit_log"),
            path(
                "<int:object_id>/timeline/",
                view(self.timeline_view),
                name="flagapp_flag_timeline",
            ),
            path(
                "<int:object_id>/restore/<int:history_id>/",
                view(self.restore_view),
                name="flagapp_flag_restore",
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": title,
            "opts": Flag._meta,
        }

    def timeline_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        flag = get_object_or_404(Flag, pk=object_id)
        envs = list(Environment.objects.order_by("order", "key"))
        env = next((e for e in envs if e.key == request.GET.get("environment")), None)
        sees_states = request.user.has_perm("flagapp.view_flagstate") or request.user.has_perm(
            "flagapp.change_flagstate"
        )
        entries = flag_timeline(flag, env.pk if env else None)
        if not sees_states:
            entries = [e for e in entries if e["kind"] == "flag"]
        context = {
            **self._context(request, f"History of {flag.key}"),
            "flag": flag,
            "entries": entries,
            "environments": envs,
            "environment": env,
            "can_restore": request.user.has_perm("flagapp.change_flagstate"),
        }
        return TemplateResponse(request, "admin/flagapp/flag/timeline.html", context)

    def restore_view(self, request: HttpRequest, object_id: int, history_id: int) -> HttpResponse:
        if not request.user.has_perm("flagapp.change_flagstate"):
            raise PermissionDenied
        flag = get_object_or_404(Flag, pk=object_id)
        row = FlagState.history.filter(history_id=history_id, flag_id=flag.pk).first()
        if row is None:
            raise PermissionDenied("no such history entry for this flag")
        versions = state_versions(flag.pk, row.environment_id)
        target = next(v for v in versions if v.history_id == history_id)
        env = Environment.objects.get(pk=row.environment_id)
        current = versions[-1]
        form = RestoreForm(request.POST if request.method == "POST" else None)
        timeline = reverse("admin:flagapp_flag_timeline", args=[flag.pk])
        refusal = ""
        if target.history_id == current.history_id:
            refusal = f"Version {target.version} is the current version: nothing to restore."
        elif request.method == "POST" and form.is_valid():
            try:
                with transaction.atomic():
                    restore_state(
                        flag, history_id, actor=request.user, reason=form.cleaned_data["reason"]
                    )
            except ApprovalRequired as exc:
                from flagapp.governance import change_requests as crs

                try:
                    cr = crs.propose_from(
                        exc,
                        author=request.user,
                        reason=(
                            f"restore of version {target.version}: {form.cleaned_data['reason']}"
                        ),
                    )
                except FlagappError as err:
                    form.add_error(None, f"This restore needs an approved change request: {err}")
                else:
                    url = reverse("admin:flagapp_changerequest_change", args=[cr.pk])
                    messages.info(
                        request,
                        format_html(
                            "{} is protected: nothing was changed yet. "
                            '<a href="{}">Change request #{}</a> holds the restore for review.',
                            env.key, url, cr.pk,
                        ),
                    )  # fmt: skip
                    return HttpResponseRedirect(timeline)
            except FlagappError as exc:
                for msgs in messages_of(exc).values():
                    for msg in msgs:
                        form.add_error(None, msg)
            else:
                messages.success(
                    request, f"{flag.key} in {env.key}: version {target.version} restored."
                )
                return HttpResponseRedirect(timeline)
        context = {
            **self._context(
                request, f"Restore {flag.key} in {env.key} to version {target.version}"
            ),
            "flag": flag,
            "environment": env,
            "target": target,
            "current": current,
            "lines": describe_state_change(current, target),
            "form": form,
            "refusal": refusal,
            "timeline_url": timeline,
        }
        return TemplateResponse(request, "admin/flagapp/flag/restore.html", context)

    def audit_log_view(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        if not (
            self.has_view_permission(request)  # type: ignore[attr-defined]
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
            **self._context(request, "Audit log"),
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
