"""The one ORM -> format-v1 document mapper.

Why one module: the document a process evaluates, the document the services validate a
proposed change against, the flags-as-code export, the change-request diff, the rollout
controller's view of a state and the API's representation of rules must all describe a flag
the same way. Each of them used to rebuild it; now each calls this module.

- :data:`FORMAT_VERSION` — the only definition of the document format number.
- :func:`envelope` — the top-level document (``format``, ``environment``, ``version``,
  ``etag``, ``flags``, ``segments``).
- :func:`flag_entry`, :func:`segment_entry` / :func:`segment_doc`, :func:`metadata` — one
  flag / one segment / a flag's metadata from plain values.
- :func:`rule_dict`, :func:`rules_as_dicts` — "a state's rules as dicts"
  (``{"id", "description", "when", "serve"}``, in evaluation order).
- :func:`state_dict` — a flag state (enabled, fallthrough, prerequisites, rules) as a dict.
- :func:`compile_environment` — a whole environment from the ORM (seven queries).
- :func:`canonical_json`, :func:`compute_etag`, :func:`parse` — the content hash and the
  engine's validation of a document.

Publishing (storing, caching, announcing) is :mod:`flagapp.publishing`'s job, not this one's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from openfeature_provider.engine.types import FORMAT_VERSION

if TYPE_CHECKING:
    from openfeature_provider.engine.types import Ruleset

    from .models import Environment, FlagState, Segment, TargetingRule

__all__ = [
    "FORMAT_VERSION",
    "OBSERVED",
    "canonical_json",
    "compile_entries",
    "compile_environment",
    "compute_etag",
    "envelope",
    "flag_entry",
    "metadata",
    "observed_flag_ids",
    "parse",
    "parse_change",
    "rule_dict",
    "rules_as_dicts",
    "segment_doc",
    "segment_entry",
    "state_dict",
]

# FORMAT_VERSION (re-exported): the format number of every document this module builds is
# the engine's own (``openfeature_provider.engine.types``), defined once.


#: Flag metadata set by the publisher on flags something reads (experiment, guardrails).
OBSERVED = "recordExposures"


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept. Lists keep their order
    (rollout weights are ordered on purpose)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compute_etag(flags: Mapping[str, Any], segments: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` of the canonical JSON of the flags and segments: equal content,
    equal ETag, whatever the version number."""
    payload = canonical_json({"flags": flags, "segments": segments}).encode("utf-8")
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def parse(document: Mapping[str, Any], *, served: bool = False) -> Ruleset:
    """Validate a document with the engine's parser (raises ``ParseError``).

    ``served=True`` for a ruleset this process will serve (publishing's, installed in the
    evaluation cache):

    * it is parsed incrementally from the last served ruleset of the same environment, so a
      publish re-validates and re-compiles only the flags and segments the change touched
      (and what names a changed segment) — the services already validated the changed flag
      on its own, so each change is validated once, not once more for the whole
      environment; the result is the same as a full parse (the engine compares entries by
      content);
    * it is frozen out of the garbage collector's walks unless ``FLAGAPP_GC_FREEZE=0``
      (openfeature_provider/engine/swap.py).

    Validation-only parses (the services' partial documents) do neither.
    """
    from openfeature_provider.engine import parse_ruleset
    from openfeature_provider.engine.swap import freeze_wanted

    if not served:
        return parse_ruleset(document)
    environment = document.get("environment")
    key = environment if isinstance(environment, str) else ""
    ruleset = parse_ruleset(document, previous=_served.get(key), freeze=freeze_wanted())
    _served[key] = ruleset  # one per environment; a plain dict store is atomic
    return ruleset


def parse_change(document: Mapping[str, Any], delta: Mapping[str, Any] | None) -> Ruleset:
    """A publish's parse (``served=True``): the engine applies ``delta`` — the changed
    entries only, from the publisher's assembly — to the last served ruleset of the
    environment when that ruleset is the delta's base (``parse_delta``: the cost of what
    changed, whatever the size of the environment); otherwise, or when the engine refuses
    the delta as a mismatch, :func:`parse` of the whole ``document``. Either way the result
    equals a full parse of ``document`` (errors included: ``parse_delta`` raises ParseError
    for an invalid result)."""
    from openfeature_provider.engine.delta import DeltaMismatch, parse_delta
    from openfeature_provider.engine.swap import freeze_wanted

    environment = document.get("environment")
    key = environment if isinstance(environment, str) else ""
    held = _served.get(key)
    base = (delta or {}).get("base") or {}
    if delta is not None and held is not None and held.etag and base.get("etag") == held.etag:
        try:
            ruleset = parse_delta(delta, previous=held, freeze=freeze_wanted())
        except DeltaMismatch:
            pass
        else:
            _served[key] = ruleset
            return ruleset
    return parse(document, served=True)


#: The last served ruleset per environment key: the ``previous`` of the next publish's parse.
#: Reuse is by content, so a stale or foreign entry costs speed, never correctness.
_served: dict[str, Ruleset] = {}


def envelope(
    *,
    environment: str,
    flags: Mapping[str, Any] | None = None,
    segments: Mapping[str, Any] | None = None,
    version: int = 0,
    etag: str | None = "",
) -> dict[str, Any]:
    """The top-level format-v1 document. ``etag=None`` computes the content hash; the
    default ``""`` is for documents that are only validated, never published."""
    flags = dict(flags or {})
    segments = dict(segments or {})
    return {
        "format": FORMAT_VERSION,
        "environment": environment,
        "version": version,
        "etag": compute_etag(flags, segments) if etag is None else etag,
        "flags": flags,
        "segments": segments,
    }


def flag_entry(
    *,
    kind: str,
    enabled: bool,
    variants: Iterable[tuple[str, Any]],
    prerequisites: Sequence[Mapping[str, Any]] | None,
    rules: Iterable[tuple[str, Any, Any]],
    fallthrough: Mapping[str, Any] | None,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """One flag of a format-v1 document from plain values. ``rules`` yields
    ``(rule_id, conditions, serve)``. Used by the compiler and by the services to validate a
    proposed (unsaved) change with the same code."""
    return {
        "kind": kind,
        "enabled": bool(enabled),
        "variants": dict(variants),
        "prerequisites": list(prerequisites or []),
        "rules": [
            {"id": rule_id, "when": list(conditions or []), "serve": serve}
            for rule_id, conditions, serve in rules
        ],
        "fallthrough": fallthrough,
        "metadata": dict(metadata),
    }


def metadata(
    owner: str, flag_type: str, risk: str, expires_on: Any, version: int
) -> dict[str, Any]:
    """Metadata carried by every resolution of the flag (OpenFeature flag metadata: strings,
    numbers and booleans only)."""
    meta: dict[str, Any] = {"owner": owner, "type": flag_type, "version": version, "risk": risk}
    if expires_on is not None:
        meta["expiresOn"] = expires_on.isoformat()
    return meta


def segment_doc(include: Any, exclude: Any, conditions: Any) -> dict[str, Any]:
    """One segment of a format-v1 document from its stored columns."""
    return {
        "include": list(include or []),
        "exclude": list(exclude or []),
        "when": list(conditions or []),
    }


def segment_entry(segment: Segment) -> dict[str, Any]:
    """One segment of a format-v1 document from its model."""
    return segment_doc(segment.include, segment.exclude, segment.conditions)


def rule_dict(rule: TargetingRule) -> dict[str, Any]:
    """One targeting rule as ``{"id", "description", "when", "serve"}``."""
    return {
        "id": rule.rule_id,
        "description": rule.description,
        "when": rule.conditions,
        "serve": rule.serve,
    }


def rules_as_dicts(state: FlagState) -> list[dict[str, Any]]:
    """A state's rules in evaluation order (``order``, then id). Sorted in Python so a
    ``prefetch_related("rules")`` is used rather than a query per state."""
    return [rule_dict(r) for r in sorted(state.rules.all(), key=lambda r: (r.order, r.pk))]


def state_dict(state: FlagState) -> dict[str, Any]:
    """A flag state's evaluated configuration (what flags-as-code exports and what a
    change-request diff compares)."""
    return {
        "enabled": state.enabled,
        "fallthrough": state.fallthrough,
        "prerequisites": list(state.prerequisites or []),
        "rules": rules_as_dicts(state),
    }


def compile_environment(environment: Environment, *, version: int = 0) -> dict[str, Any]:
    """The format-v1 document of one environment (archived flags left out).

    Seven queries whatever the number of flags (flags with owners, variants, states, rules,
    segments, and the experiments and guarded rollouts that mark flags whose exposures are
    recorded, :func:`observed_flag_ids`), read as plain rows: building model
    instances and per-object prefetch caches costs more than everything else here once
    there are hundreds of flags.
    """
    flag_docs, segment_docs = compile_entries(environment)
    return envelope(
        environment=environment.key,
        flags=flag_docs,
        segments=segment_docs,
        version=version,
        etag=None,
    )


def compile_entries(
    environment: Environment,
    *,
    flag_keys: Iterable[str] | None = None,
    segment_keys: Iterable[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(flags, segments)``: the document entries of ``environment`` by key, sorted.

    ``None`` (the default) reads every live flag / every segment; a collection of keys reads
    only those (a key that is absent from the result was deleted or archived). The
    incremental publish (``flagapp.assembly``) reads just what a change touched, so one
    change costs O(touched rows), not O(flags): the same seven queries (fewer when nothing of
    one kind is asked for), each restricted to the keys. One code path for both, so a
    partial read and a full compile describe a flag identically.
    """
    from .models import Flag, FlagState, Segment, TargetingRule, Variant

    flag_docs: dict[str, Any] = {}
    wanted_flags = None if flag_keys is None else sorted(set(flag_keys))
    if wanted_flags is None or wanted_flags:
        live: dict[str, Any] = {"flag__archived": False}
        if wanted_flags is not None:
            live["flag__key__in"] = wanted_flags
        variants: dict[int, list[tuple[str, Any]]] = {}
        for flag_id, key, value in (
            Variant.objects.filter(**live)
            .order_by("flag_id", "order", "key")
            .values_list("flag_id", "key", "value")
        ):
            variants.setdefault(flag_id, []).append((key, value))
        states: dict[int, tuple[int, bool, Any, Any, int]] = {}
        for (
            state_id,
            flag_id,
            enabled,
            fallthrough,
            prerequisites,
            state_version,
        ) in FlagState.objects.filter(environment_id=environment.pk, **live).values_list(
            "id", "flag_id", "enabled", "fallthrough", "prerequisites", "version"
        ):
            states[flag_id] = (state_id, enabled, fallthrough, prerequisites, state_version)
        rules: dict[int, list[tuple[str, Any, Any]]] = {}
        rule_filter = {f"state__{name}": value for name, value in live.items()}
        for state_id, rule_id, conditions, serve in (
            TargetingRule.objects.filter(state__environment_id=environment.pk, **rule_filter)
            .order_by("state_id", "order", "id")
            .values_list("state_id", "rule_id", "conditions", "serve")
        ):
            rules.setdefault(state_id, []).append((rule_id, conditions, serve))

        flag_rows = Flag.objects.filter(archived=False)
        if wanted_flags is not None:
            flag_rows = flag_rows.filter(key__in=wanted_flags)
        rows = list(
            flag_rows.values_list(
                "id", "key", "kind", "flag_type", "risk", "expires_on", "owner__name"
            )
        )
        observed = observed_flag_ids(
            environment.pk, flag_ids=None if wanted_flags is None else [r[0] for r in rows]
        )
        rows.sort(key=lambda row: row[1])
        for flag_id, key, kind, flag_type, risk, expires_on, owner in rows:
            state = states.get(flag_id)
            if state is None:
                # Created before this environment existed and never configured here: off.
                state = (0, False, None, [], 0)
            state_id, enabled, fallthrough, prerequisites, state_version = state
            meta = metadata(owner, flag_type, risk, expires_on, state_version)
            if flag_id in observed:
                meta[OBSERVED] = True
            flag_docs[key] = flag_entry(
                kind=kind,
                enabled=enabled,
                variants=variants.get(flag_id, []),
                prerequisites=prerequisites,
                rules=rules.get(state_id, []),
                fallthrough=fallthrough,
                metadata=meta,
            )
    segment_docs: dict[str, Any] = {}
    wanted_segments = None if segment_keys is None else sorted(set(segment_keys))
    if wanted_segments is None or wanted_segments:
        segment_rows = Segment.objects.all()
        if wanted_segments is not None:
            segment_rows = segment_rows.filter(key__in=wanted_segments)
        found = sorted(
            segment_rows.values_list("key", "include", "exclude", "conditions"),
            key=lambda row: row[0],
        )
        segment_docs = {
            key: segment_doc(include, exclude, conditions)
            for key, include, exclude, conditions in found
        }
    return flag_docs, segment_docs


def observed_flag_ids(environment_id: int, *, flag_ids: Iterable[int] | None = None) -> set[int]:
    """The flags of ``environment_id`` whose exposures something reads: those of an
    experiment not ended, and of a running or paused rollout with guardrails. Read by the
    publisher (:func:`compile_entries`) to mark them :data:`OBSERVED` (here, with the
    mapper, so the mapper imports nothing of the exposure buffer);
    ``flag_ids``: only among these (an incremental publish reads what it touched)."""
    from django.db.models import Q
    from django.utils import timezone

    from flagapp.models import Experiment, RolloutPlan

    experiments = Experiment.objects.filter(environment_id=environment_id)
    plans = RolloutPlan.objects.filter(
        environment_id=environment_id,
        state__in=("running", "paused"),
        guardrails__isnull=False,
    )
    if flag_ids is not None:
        wanted = list(flag_ids)
        if not wanted:
            return set()
        experiments = experiments.filter(flag_id__in=wanted)
        plans = plans.filter(flag_id__in=wanted)
    ids = set(
        experiments.filter(Q(ended_at__isnull=True) | Q(ended_at__gt=timezone.now())).values_list(
            "flag_id", flat=True
        )
    )
    ids.update(plans.values_list("flag_id", flat=True))
    return ids
