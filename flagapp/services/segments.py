"""Segment services. Segments are global: every environment's snapshot carries them, so a
change publishes every environment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from flagapp.documents import envelope, segment_entry
from flagapp.exceptions import FlagValidationError
from flagapp.models import Environment, Segment, TargetingRule

from ._base import (
    UNSET,
    bump,
    check_permission,
    check_version,
    clean_reason,
    delete,
    describe_change,
    parse_or_raise,
    publish_on_commit,
    require_approval,
    save,
)

if TYPE_CHECKING:
    from flagapp.policy import Actor, Approval

__all__ = [
    "SegmentUsage",
    "SegmentUsagePage",
    "SegmentUse",
    "create_segment",
    "delete_segment",
    "segment_usage",
    "segment_usage_page",
    "segment_users",
    "update_segment",
]

_SEGMENT_KEY = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,99})$")
_FIELD_MAP = {"when": "conditions"}


@dataclass(frozen=True)
class SegmentUse:
    """One targeting rule that uses a segment, directly or through other segments."""

    flag: str
    flag_id: int
    environment: str
    state_id: int
    rule_id: str
    #: the segments the rule names that reach the segment (empty: the rule names it)
    via: tuple[str, ...]
    guarded: bool  # protected environment or high-risk flag: changing it needs approval
    archived: bool
    when: list[Any]
    serve: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.flag}@{self.environment}#{self.rule_id}"


@dataclass(frozen=True)
class SegmentUsage:
    rules: list[SegmentUse]
    #: segments whose conditions name this one
    segments: list[str]
    #: every segment that reaches this one through others (``segments`` included)
    reaching: list[str]


def segment_usage(key: str) -> SegmentUsage:
    """Where segment ``key`` is used: every rule naming it or a segment that (transitively)
    names it, and those segments. The walk is the engine's (``graph.segment_refs`` on the
    raw conditions, ``graph.dependents``); a text pre-filter keeps the rule scan to the rows
    that mention one of the keys."""
    from openfeature_provider.engine.graph import dependents, segment_refs

    graph = {s_key: segment_refs(conds or []) for s_key, conds in
             Segment.objects.values_list("key", "conditions")}  # fmt: skip
    reaching = dependents([key], graph)  # key plus every segment reaching it
    mention = Q()
    for k in reaching:
        mention |= Q(conditions__icontains=k)
    rules: list[SegmentUse] = []
    # Archived flags count too: unarchiving them must not meet a missing segment. Read as
    # values (no model instances): a segment every flag uses has 10,000 rules.
    rows = (
        TargetingRule.objects.filter(mention)
        .order_by("state__flag__key", "state__environment__order", "order")
        .values_list(
            "conditions", "serve", "rule_id", "state_id", "state__flag_id", "state__flag__key",
            "state__flag__risk", "state__flag__archived", "state__environment__key",
            "state__environment__protected",
        )
    )  # fmt: skip
    for (
        conditions,
        serve,
        rule_id,
        state_id,
        flag_id,
        flag_key,
        risk,
        archived,
        env_key,
        protected,
    ) in rows:
        refs = segment_refs(conditions or [])
        if key not in refs and not refs & reaching:
            continue
        rules.append(
            SegmentUse(
                flag=flag_key,
                flag_id=flag_id,
                environment=env_key,
                state_id=state_id,
                rule_id=rule_id,
                via=() if key in refs else tuple(sorted(refs & reaching - {key})),
                guarded=protected or risk == "high",
                archived=archived,
                when=list(conditions or []),
                serve=dict(serve or {}),
            )
        )
    direct = sorted(k for k, refs in graph.items() if k != key and key in refs)
    return SegmentUsage(rules=rules, segments=direct, reaching=sorted(reaching - {key}))


@dataclass(frozen=True)
class SegmentUsagePage:
    """One page of :func:`segment_usage`'s rules, with the totals of all of them."""

    #: rules using the segment (all pages), and how many flags and environments they are in
    total: int
    flags: int
    environments: int
    #: index of ``rules[0]`` among all the rules (a page past the end shows the last one)
    offset: int
    rules: list[SegmentUse]
    segments: list[str]
    reaching: list[str]


def segment_usage_page(key: str, *, offset: int = 0, limit: int = 100) -> SegmentUsagePage:
    """:func:`segment_usage` one page at a time, in the same order, for a page that lists
    them (the admin's segment page): four queries whatever the number of rules. Deciding
    which rules use the segment needs every candidate rule's conditions (the same walk);
    what they serve, their flags and environments are read only for the ``limit`` rules
    of the page — a segment every one of 10,000 flags uses reads 10,000 small condition
    lists, not 10,000 rules."""
    from openfeature_provider.engine.graph import dependents, segment_refs

    graph = {s_key: segment_refs(conds or []) for s_key, conds in
             Segment.objects.values_list("key", "conditions")}  # fmt: skip
    reaching = dependents([key], graph)
    mention = Q()
    for k in reaching:
        mention |= Q(conditions__icontains=k)
    matched: list[tuple[int, int, int, Any, set[str]]] = []
    scan = (
        TargetingRule.objects.filter(mention)
        .order_by("state__flag__key", "state__environment__order", "order")
        .values_list("pk", "state__flag_id", "state__environment_id", "conditions")
    )
    for pk, flag_id, env_id, conditions in scan:
        refs = segment_refs(conditions or [])
        if key in refs or refs & reaching:
            matched.append((pk, flag_id, env_id, conditions, refs))
    total = len(matched)
    limit = max(1, limit)
    offset = max(0, min(offset, (total - 1) // limit * limit if total else 0))
    shown = matched[offset : offset + limit]
    details = {
        row[0]: row[1:]
        for row in TargetingRule.objects.filter(pk__in=[m[0] for m in shown]).values_list(
            "pk", "serve", "rule_id", "state_id", "state__flag__key", "state__flag__risk",
            "state__flag__archived", "state__environment__key", "state__environment__protected",
        )
    }  # fmt: skip
    rules = []
    for pk, flag_id, _env_id, conditions, refs in shown:
        serve, rule_id, state_id, flag_key, risk, archived, env_key, protected = details[pk]
        rules.append(
            SegmentUse(
                flag=flag_key,
                flag_id=flag_id,
                environment=env_key,
                state_id=state_id,
                rule_id=rule_id,
                via=() if key in refs else tuple(sorted(refs & reaching - {key})),
                guarded=protected or risk == "high",
                archived=archived,
                when=list(conditions or []),
                serve=dict(serve or {}),
            )
        )
    return SegmentUsagePage(
        total=total,
        flags=len({m[1] for m in matched}),
        environments=len({m[2] for m in matched}),
        offset=offset,
        rules=rules,
        segments=sorted(k for k, refs in graph.items() if k != key and key in refs),
        reaching=sorted(reaching - {key}),
    )


def segment_users(key: str) -> dict[str, list[str]]:
    """Who refers to segment ``key``: ``{"rules": ["flag@env#rule"], "segments": [...]}``
    plus ``"protected_or_high_risk"`` (rules whose change needs approval). Rules and
    segments that reach it through other segments count: its audience is theirs."""
    usage = segment_usage(key)
    return {
        "rules": sorted(u.label for u in usage.rules),
        "segments": usage.reaching,
        "protected_or_high_risk": sorted(u.label for u in usage.rules if u.guarded),
    }


def _clean(
    errors: dict[str, list[str]], field: str, value: Any, *, strings: bool = True
) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        errors.setdefault(field, []).append("expected a list")
        return []
    if strings and not all(isinstance(v, str) for v in value):
        errors.setdefault(field, []).append("expected a list of strings (context keys)")
    return list(value)


def _validate(segment_key: str, entry: dict[str, Any]) -> None:
    others = {s.key: segment_entry(s) for s in Segment.objects.exclude(key=segment_key)}
    others[segment_key] = entry
    parse_or_raise(
        envelope(environment="-", segments=others),
        segment_key=segment_key,
        field_map=_FIELD_MAP,
    )


def create_segment(
    *,
    key: str,
    name: str,
    actor: Actor,
    reason: str,
    description: str = "",
    include: Any = None,
    exclude: Any = None,
    conditions: Any = None,
) -> Segment:
    reason = clean_reason(reason)
    check_permission(actor, "flagapp.add_segment")
    errors: dict[str, list[str]] = {}
    if not isinstance(key, str) or not _SEGMENT_KEY.match(key):
        errors["key"] = ["1-100 lowercase letters, digits, '.', '-' or '_'"]
    elif Segment.objects.filter(key=key).exists():
        errors["key"] = [f"a segment {key!r} already exists"]
    if not isinstance(name, str) or not name.strip():
        errors["name"] = ["a name is required"]
    inc = _clean(errors, "include", include)
    exc = _clean(errors, "exclude", exclude)
    cond = _clean(errors, "conditions", conditions, strings=False)
    if errors:
        raise FlagValidationError(errors)
    _validate(key, {"include": inc, "exclude": exc, "when": cond})
    try:
        with transaction.atomic():
            segment = Segment(
                key=key,
                name=name.strip(),
                description=description or "",
                include=inc,
                exclude=exc,
                conditions=cond,
            )
            save(segment, actor, reason)
            publish_on_commit(
                list(Environment.objects.values_list("pk", flat=True)), segments=[segment.key]
            )
    except IntegrityError:
        # A concurrent create took the key between the check and the insert.
        raise FlagValidationError({"key": [f"a segment {key!r} already exists"]}) from None

    return segment


def update_segment(
    segment: Segment,
    *,
    actor: Actor,
    reason: str,
    name: Any = UNSET,
    description: Any = UNSET,
    include: Any = UNSET,
    exclude: Any = UNSET,
    conditions: Any = UNSET,
    key: Any = UNSET,
    change_request: Approval | None = None,
    expected_version: int | None = None,
) -> Segment:
    """Change a segment. Needs approval when a rule of a high-risk flag or in a protected
    environment uses it (its audience changes with it). ``expected_version``: the segment
    version the caller edited (``check_version``)."""
    reason = clean_reason(reason)
    check_permission(actor, "flagapp.change_segment")
    errors: dict[str, list[str]] = {}
    changes: dict[str, Any] = {}
    if key is not UNSET and key != segment.key:
        errors["key"] = ["a segment key cannot be changed"]
    if name is not UNSET:
        if not isinstance(name, str) or not name.strip():
            errors["name"] = ["a name is required"]
        else:
            changes["name"] = name.strip()
    if description is not UNSET:
        changes["description"] = description or ""
    if include is not UNSET:
        changes["include"] = _clean(errors, "include", include)
    if exclude is not UNSET:
        changes["exclude"] = _clean(errors, "exclude", exclude)
    if conditions is not UNSET:
        changes["conditions"] = _clean(errors, "conditions", conditions, strings=False)
    if errors:
        raise FlagValidationError(errors)
    if not changes:
        return segment
    with transaction.atomic():
        locked = Segment.objects.select_for_update().get(pk=segment.pk)
        changes = {k: v for k, v in changes.items() if getattr(locked, k) != v}
        if check_version(locked, expected_version, unchanged=not changes):
            return locked
        _validate(
            locked.key,
            {
                "include": changes.get("include", locked.include),
                "exclude": changes.get("exclude", locked.exclude),
                "when": changes.get("conditions", locked.conditions),
            },
        )
        if {"include", "exclude", "conditions"} & set(changes):
            guarded = segment_users(locked.key)["protected_or_high_risk"]
            require_approval(
                bool(guarded),
                change_request,
                None,
                None,
                describe_change(
                    "update_segment",
                    segment=locked,
                    params={**changes, "expected_version": locked.version},
                ),
            )
        for k, v in changes.items():
            setattr(locked, k, v)
        bump(locked)
        save(locked, actor, reason)
        publish_on_commit(
            list(Environment.objects.values_list("pk", flat=True)), segments=[locked.key]
        )
    for k, v in changes.items():
        setattr(segment, k, v)
    segment.version = locked.version
    return locked


def delete_segment(
    segment: Segment, *, actor: Actor, reason: str, expected_version: int | None = None
) -> None:
    """Delete a segment no rule or segment uses (a reference would make every snapshot
    invalid)."""
    reason = clean_reason(reason)
    check_permission(actor, "flagapp.delete_segment")
    with transaction.atomic():
        locked = Segment.objects.select_for_update().get(pk=segment.pk)
        check_version(locked, expected_version, unchanged=False)
        users = segment_users(locked.key)
        if users["rules"] or users["segments"]:
            raise FlagValidationError(
                {
                    "__all__": [
                        f"segment {locked.key!r} is in use: "
                        + ", ".join(users["rules"] + users["segments"])
                    ]
                }
            )
        delete(locked, actor, reason)
        publish_on_commit(
            list(Environment.objects.values_list("pk", flat=True)), segments=[locked.key]
        )
