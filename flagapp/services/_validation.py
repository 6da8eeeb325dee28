"""Validation of proposed flag configuration with the engine's own parser.

Why: targeting has exactly one interpreter, the engine. A proposed change (unsaved values)
is compiled into a small ruleset — the changed flag, the flags it names as prerequisites
(transitively, so cycles are caught) and every segment — and parsed; a ParseError comes
back as a field error. Nothing here re-implements a rule of the format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flagapp.documents import envelope, flag_entry, segment_entry
from flagapp.exceptions import FlagValidationError

from ._base import parse_or_raise

if TYPE_CHECKING:
    from flagapp.models import Environment, Flag

__all__ = ["normalize_rules", "normalize_variants", "validate_flag_in_environment"]

_MAX_PREREQUISITE_DEPTH = 50


def normalize_variants(variants: Any) -> list[dict[str, Any]]:
    """Accept ``{"on": true, ...}`` or ``[{"key", "value", "description"?}, ...]`` and return
    the list form (order = position)."""
    if isinstance(variants, Mapping):
        items = [{"key": k, "value": v} for k, v in variants.items()]
    elif isinstance(variants, list | tuple):
        items = []
        for i, item in enumerate(variants):
            if not isinstance(item, Mapping) or "key" not in item or "value" not in item:
                raise FlagValidationError(
                    {"variants": [f"item {i}: expected an object with 'key' and 'value'"]}
                )
            items.append(dict(item))
    else:
        raise FlagValidationError({"variants": ["expected an object or a list of variants"]})
    if not items:
        raise FlagValidationError({"variants": ["a flag needs at least one variant"]})
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        key = item.get("key")
        if not isinstance(key, str) or not key.strip():
            raise FlagValidationError({"variants": [f"item {i}: a variant key is required"]})
        if len(key) > 100:
            raise FlagValidationError({"variants": [f"{key!r}: at most 100 characters"]})
        if key in seen:
            raise FlagValidationError({"variants": [f"variant {key!r} is listed twice"]})
        seen.add(key)
        desc = item.get("description", "") or ""
        if not isinstance(desc, str):
            raise FlagValidationError({"variants": [f"{key!r}: description must be text"]})
        out.append({"key": key, "value": item["value"], "description": desc, "order": i})
    return out


def normalize_rules(rules: Any) -> list[dict[str, Any]]:
    """Accept a list of ``{"id"?, "description"?, "when" | "conditions", "serve"}`` and
    return ``[{"id", "description", "when", "serve"}]`` with ids filled in (``r1``, ``r2``
    ... not already used). Shape errors beyond "a list of objects" are left to the parser."""
    if rules is None:
        return []
    if not isinstance(rules, list | tuple):
        raise FlagValidationError({"rules": ["expected a list of rules"]})
    out: list[dict[str, Any]] = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            raise FlagValidationError({"rules": [f"rules[{i}]: expected an object"]})
        unknown = set(rule) - {"id", "rule_id", "description", "when", "conditions", "serve"}
        if unknown:
            raise FlagValidationError(
                {"rules": [f"rules[{i}]: unknown key(s) {', '.join(sorted(unknown))}"]}
            )
        rule_id = rule.get("id", rule.get("rule_id"))
        when = rule.get("when", rule.get("conditions", []))
        description = rule.get("description", "") or ""
        if not isinstance(description, str) or len(description) > 500:
            raise FlagValidationError(
                {"rules": [f"rules[{i}].description: text of at most 500 characters"]}
            )
        if rule_id is not None and (not isinstance(rule_id, str) or len(rule_id) > 64):
            raise FlagValidationError(
                {"rules": [f"rules[{i}].id: a string of at most 64 characters"]}
            )
        out.append(
            {
                "id": rule_id or None,
                "description": description,
                "when": when,
                "serve": rule.get("serve"),
            }
        )
    used = {r["id"] for r in out if r["id"]}
    n = 0
    for r in out:
        if not r["id"]:
            n += 1
            while f"r{n}" in used:
                n += 1
            r["id"] = f"r{n}"
            used.add(r["id"])
    return out


def _prerequisite_closure(
    environment: Environment, start: Sequence[Mapping[str, Any]], exclude_key: str
) -> dict[str, dict[str, Any]]:
    """Entries for every flag reachable through prerequisites from ``start`` (with their
    own state in ``environment``), so the parser sees undefined flags, unknown variants
    and cycles."""
    from flagapp.models import Flag

    entries: dict[str, dict[str, Any]] = {}
    frontier = {p.get("flag") for p in start if isinstance(p, Mapping)}
    frontier = {k for k in frontier if isinstance(k, str) and k != exclude_key}
    depth = 0
    while frontier and depth < _MAX_PREREQUISITE_DEPTH:
        depth += 1
        flags = (
            Flag.objects.filter(key__in=frontier, archived=False)
            .select_related("owner")
            .prefetch_related("variants")
        )
        states = {
            s.flag_id: s
            for s in environment.flag_states.filter(flag__key__in=frontier).prefetch_related(
                "rules"
            )
        }
        nxt: set[str] = set()
        for flag in flags:
            state = states.get(flag.pk)
            prereqs = list(state.prerequisites) if state is not None else []
            entries[flag.key] = flag_entry(
                kind=flag.kind,
                enabled=False,
                variants=[(v.key, v.value) for v in flag.variants.all()],
                prerequisites=prereqs,
                # Rules of other flags do not matter for this change; their variants and
                # prerequisites do.
                rules=[],
                fallthrough=None,
                metadata={},
            )
            nxt.update(
                str(p.get("flag")) for p in prereqs if isinstance(p, Mapping) and p.get("flag")
            )
        frontier = {k for k in nxt if isinstance(k, str) and k not in entries and k != exclude_key}
    return entries


def validate_flag_in_environment(
    *,
    flag_key: str,
    kind: str,
    variants: Iterable[tuple[str, Any]],
    environment: Environment,
    enabled: bool,
    fallthrough: Any,
    prerequisites: Any,
    rules: Sequence[Mapping[str, Any]],
    context: str = "",
) -> None:
    """Raise FlagValidationError (fields: variants, fallthrough, prerequisites, rules,
    enabled) when the engine would reject this flag configuration in ``environment``."""
    from flagapp.models import Segment

    if prerequisites is None:
        prerequisites = []
    if not isinstance(prerequisites, list | tuple):
        raise FlagValidationError({"prerequisites": ["expected a list"]})
    for i, p in enumerate(prerequisites):
        if isinstance(p, Mapping) and p.get("flag") == flag_key:
            raise FlagValidationError(
                {"prerequisites": [f"prerequisites[{i}]: a flag cannot require itself"]}
            )
    flags: dict[str, Any] = _prerequisite_closure(environment, prerequisites, flag_key)
    flags[flag_key] = flag_entry(
        kind=kind,
        enabled=enabled,
        variants=variants,
        prerequisites=prerequisites,
        rules=[(r["id"], r["when"], r["serve"]) for r in rules],
        fallthrough=fallthrough,
        metadata={},
    )
    document = envelope(
        environment=environment.key,
        flags=flags,
        segments={s.key: segment_entry(s) for s in Segment.objects.all()},
    )
    parse_or_raise(document, flag_key=flag_key, context=context)


def dependents_of(flag: Flag) -> list[str]:
    """``"<flag>@<env>"`` for every non-archived flag state naming ``flag`` as a
    prerequisite (they would fail to compile without it)."""
    from flagapp.models import FlagState

    out = []
    for state in (
        FlagState.objects.exclude(prerequisites=[])
        .filter(flag__archived=False)
        .exclude(flag=flag)
        .select_related("flag", "environment")
    ):
        if any(isinstance(p, Mapping) and p.get("flag") == flag.key for p in state.prerequisites):
            out.append(f"{state.flag.key}@{state.environment.key}")
    return sorted(out)
