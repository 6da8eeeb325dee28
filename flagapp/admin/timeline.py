"""A flag's readable timeline and "restore this version".

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

The pages are mounted by ``flagapp.admin.audit.AuditURLs``; the wording is
``flagapp.admin.wording``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from flagapp import services
from flagapp.exceptions import FlagValidationError
from flagapp.models import Environment, Flag, FlagState, TargetingRule, Variant

from .wording import CHANGE, conditions_text, prerequisite_text, rule_text, serve_text, value_text

__all__ = [
    "StateVersion",
    "describe_state_change",
    "flag_timeline",
    "restore_state",
    "state_versions",
]

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
                    change=CHANGE.get(row.history_type, row.history_type),
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
        lines += [f"rule {r['id']} added: {rule_text(r)}" for r in after.rules]
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
            lines.append(f"rule {rule_id} added at position {pos + 1}: {rule_text(rule)}")
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
        f"rule {rule_id} removed (was: {rule_text(old)})"
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
                f"{label}: {value_text(getattr(prev, name))} → {value_text(getattr(h, name))}"
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
            text = f"variant {v.key} removed (was {value_text(v.value)})"
            variants.pop(v.id, None)
        elif old is None:
            text = f"variant {v.key} added: {value_text(v.value)}"
            variants[v.id] = v
        else:
            parts = []
            if old.value != v.value:
                parts.append(f"value {value_text(old.value)} → {value_text(v.value)}")
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
