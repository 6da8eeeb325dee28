"""Blast-radius preview: how many recent contexts would be served differently after a change.

The question a reviewer asks before a targeting change goes out is "who does this touch?".
We answer it with the same engine that serves flags: evaluate the recent evaluation contexts
of the environment (``flagapp.sampling.preview_sample``: sampled from in-process
evaluations and ``POST /sdk/v1/events``, one context per targeting key, each SDK key's share
capped, optionally trusted sources only) against the ruleset as it is and as it would be,
and count the contexts whose outcome differs. The result says how big the sample was and
where it came from (``BlastRadius.sample``), so a reviewer can judge it. Because both sides
use the real engine, prerequisites, segments and sticky bucketing are all accounted for.

``compare`` is pure (ruleset documents + contexts in, :class:`BlastRadius` out); the
Django-facing ``preview`` helpers in :mod:`flagapp.governance.change_requests` compile the
"after" document and fetch the sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openfeature_provider.engine import Resolution, Ruleset, evaluate, parse_ruleset
from openfeature_provider.engine.graph import dependents_in_order, prerequisite_graph

__all__ = ["BlastRadius", "Outcome", "compare", "dependent_flags", "outcome_of", "served_as"]

#: (served the caller's default?, variant) -- what "a different variant" means. A disabled
#: flag serves the caller's default, which is different from serving any variant.
Outcome = tuple[bool, str | None]


def outcome_of(resolution: Resolution) -> Outcome:
    if resolution.use_default:
        return (True, None)
    return (False, resolution.variant)


def served_as(resolution: Resolution, kind: str | None) -> object:
    """What a caller sees, for deciding whether a context "changed".

    The caller's default is not known here, except by convention for boolean flags: the
    default of ``flag_is_active`` and of every kill switch is ``false``, so a boolean flag
    serving its ``false`` variant serves what a disabled flag served. Re-enabling a flag
    with ``off`` as fallthrough therefore moves nobody. Other kinds compare the outcome
    (default or which variant).
    """
    if kind == "boolean":
        return False if resolution.use_default else resolution.value
    return outcome_of(resolution)


def _describe(outcome: Outcome) -> str:
    return "(default)" if outcome[0] else str(outcome[1])


@dataclass(slots=True)
class BlastRadius:
    """The preview stored on a change request and returned by API dry runs (``as_dict``)."""

    flag_key: str
    environment: str
    sampled: int
    changed: int
    #: flags whose outcome was compared: the changed flag plus flags that list it as a
    #: prerequisite (directly or transitively)
    flags: list[str] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    #: per (before -> after) transition, how many contexts take it
    transitions: dict[str, int] = field(default_factory=dict)
    #: where the contexts came from (``flagapp.sampling.PreviewSample.as_dict``): ``size``,
    #: ``sources`` ({"in-process": n, "sdk:<public id>": m}), ``restricted_to`` (the
    #: trusted sources, or None for all), ``duplicates`` and ``capped`` (skipped contexts);
    #: ``{"sources": {"given": n}}`` when the caller supplied the contexts
    sample: dict[str, Any] = field(default_factory=dict)
    #: targeting keys compared and changed (not stored: to add environments up per user)
    sampled_keys: set[str] = field(default_factory=set)
    changed_keys: set[str] = field(default_factory=set)

    @property
    def share(self) -> float:
        return self.changed / self.sampled if self.sampled else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "flag": self.flag_key,
            "environment": self.environment,
            "sampled": self.sampled,
            "changed": self.changed,
            "share": round(self.share, 4),
            "flags": list(self.flags),
            "examples": list(self.examples),
            "transitions": dict(self.transitions),
            "sample": dict(self.sample),
        }

    def provenance(self) -> str:
        """``"in-process: 99, sdk:Ab3dE6gH: 200"`` (largest first), or ""."""
        sources = self.sample.get("sources") or {}
        text = ", ".join(
            f"{name}: {n}" for name, n in sorted(sources.items(), key=lambda kv: -kv[1])
        )
        restricted = self.sample.get("restricted_to")
        if restricted is not None:
            text += f" (trusted sources only: {', '.join(restricted) or 'none'})"
        return text

    def summary(self) -> str:
        if not self.sampled:
            return "no recent evaluation contexts sampled: the blast radius is unknown"
        text = (
            f"{self.changed} of {self.sampled} recent contexts ({self.share:.1%}) "
            f"would be served a different variant"
        )
        provenance = self.provenance()
        return f"{text}; sample from {provenance}" if provenance else text


def dependent_flags(ruleset: Ruleset, flag_key: str) -> list[str]:
    """``flag_key`` and every flag that depends on it through prerequisites, breadth first
    in document order (the engine's graph walk, ``engine.graph.dependents_in_order``)."""
    return dependents_in_order([flag_key], prerequisite_graph(ruleset.flags))


def _as_ruleset(doc: Ruleset | Mapping[str, Any] | None, environment: str) -> Ruleset:
    if isinstance(doc, Ruleset):
        return doc
    if doc is None:
        from flagapp.documents import envelope

        doc = envelope(environment=environment)
    return parse_ruleset(doc)


def compare(
    before: Ruleset | Mapping[str, Any] | None,
    after: Ruleset | Mapping[str, Any],
    flag_key: str,
    contexts: Iterable[Mapping[str, Any]],
    *,
    max_examples: int = 5,
) -> BlastRadius:
    """Evaluate every context against both rulesets; count the ones whose outcome changed.

    ``before`` may be ``None`` (nothing published yet: every flag is unknown, so every
    context was served the caller's default). Each context counts once even when several
    dependent flags change for it; examples show the first flag that changed.
    """
    new = _as_ruleset(after, "")
    old = _as_ruleset(before, new.environment)
    keys = list(dict.fromkeys(dependent_flags(old, flag_key) + dependent_flags(new, flag_key)))
    sampled = changed = 0
    examples: list[dict[str, Any]] = []
    transitions: dict[str, int] = {}
    sampled_keys: set[str] = set()
    changed_keys: set[str] = set()
    kinds = {k: f.kind for k, f in old.flags.items()} | {k: f.kind for k, f in new.flags.items()}
    for context in contexts:
        # one context per targeting key: a user sampled twice is one user
        user = context.get("targetingKey") if isinstance(context, Mapping) else None
        if isinstance(user, str):
            if user in sampled_keys:
                continue
            sampled_keys.add(user)
        sampled += 1
        for key in keys:
            ra, rb = evaluate(old, key, context), evaluate(new, key, context)
            if served_as(ra, kinds.get(key)) != served_as(rb, kinds.get(key)):
                a, b = outcome_of(ra), outcome_of(rb)
                changed += 1
                if isinstance(user, str):
                    changed_keys.add(user)
                label = f"{_describe(a)} -> {_describe(b)}"
                if key != flag_key:
                    label = f"{key}: {label}"
                transitions[label] = transitions.get(label, 0) + 1
                if len(examples) < max_examples:
                    examples.append(
                        {
                            "targetingKey": context.get("targetingKey"),
                            "flag": key,
                            "before": _describe(a),
                            "after": _describe(b),
                            "context": _trim(context),
                        }
                    )
                break
    return BlastRadius(
        flag_key=flag_key,
        environment=new.environment,
        sampled=sampled,
        changed=changed,
        flags=keys,
        examples=examples,
        transitions=dict(sorted(transitions.items(), key=lambda kv: -kv[1])),
        sampled_keys=sampled_keys,
        changed_keys=changed_keys,
    )


def _trim(context: Mapping[str, Any], limit: int = 8) -> dict[str, Any]:
    """A few attributes of an example context: enough to recognise it, small to store."""
    items: Sequence[tuple[str, Any]] = list(context.items())[:limit]
    return {k: v for k, v in items if isinstance(v, str | int | float | bool) or v is None}
