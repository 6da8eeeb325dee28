"""Compile the ORM's flag configuration into ruleset documents (format v1).

Why: evaluation never touches the database. A change is compiled once, here, into an
immutable JSON document per environment, which :mod:`flagapp.publishing` validates with the
engine's own parser, stores with a version and an ETag (the content hash) and announces.
This is the only module that reads the ORM to build what is evaluated.

- :func:`compile_environment` — models -> format-v1 document (bounded number of queries).
- ``publish``, ``latest``, ``publish_all`` and the cache keys live in
  :mod:`flagapp.publishing` (the one publish chain) and stay importable from here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openfeature_provider.engine.types import Ruleset

    from .models import Environment, Segment

__all__ = [
    "FORMAT_VERSION",
    "canonical_json",
    "compile_environment",
    "compute_etag",
    "flag_entry",
    "parse",
    "segment_entry",
]

logger = logging.getLogger("flagapp")

FORMAT_VERSION = 1


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept. Lists keep their order
    (rollout weights are ordered on purpose)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compute_etag(flags: Mapping[str, Any], segments: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` of the canonical JSON of the flags and segments: equal content,
    equal ETag, whatever the version number."""
    payload = canonical_json({"flags": flags, "segments": segments}).encode("utf-8")
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def parse(document: Mapping[str, Any]) -> Ruleset:
    """Validate a document with the engine's parser (raises ``ParseError``)."""
    from openfeature_provider.engine import parse_ruleset

    return parse_ruleset(document)


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


def _metadata(
    owner: str, flag_type: str, risk: str, expires_on: Any, version: int
) -> dict[str, Any]:
    """Metadata carried by every resolution of the flag (OpenFeature flag metadata: strings,
    numbers and booleans only)."""
    meta: dict[str, Any] = {"owner": owner, "type": flag_type, "version": version, "risk": risk}
    if expires_on is not None:
        meta["expiresOn"] = expires_on.isoformat()
    return meta


def segment_entry(segment: Segment) -> dict[str, Any]:
    return {
        "include": list(segment.include or []),
        "exclude": list(segment.exclude or []),
        "when": list(segment.conditions or []),
    }


def compile_environment(environment: Environment, *, version: int = 0) -> dict[str, Any]:
    """The format-v1 document of one environment (archived flags left out).

    Five queries whatever the number of flags (flags with owners, variants, states, rules,
    segments), read as plain rows: building model instances and per-object prefetch caches
    costs more than everything else here once there are hundreds of flags.
    """
    from .models import Flag, FlagState, Segment, TargetingRule, Variant

    live = {"flag__archived": False}
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
    for state_id, rule_id, conditions, serve in (
        TargetingRule.objects.filter(
            state__environment_id=environment.pk, state__flag__archived=False
        )
        .order_by("state_id", "order", "id")
        .values_list("state_id", "rule_id", "conditions", "serve")
    ):
        rules.setdefault(state_id, []).append((rule_id, conditions, serve))

    flag_docs: dict[str, Any] = {}
    for flag_id, key, kind, flag_type, risk, expires_on, owner in (
        Flag.objects.filter(archived=False)
        .order_by("key")
        .values_list("id", "key", "kind", "flag_type", "risk", "expires_on", "owner__name")
    ):
        state = states.get(flag_id)
        if state is None:
            # Created before this environment existed and never configured here: off.
            state = (0, False, None, [], 0)
        state_id, enabled, fallthrough, prerequisites, state_version = state
        flag_docs[key] = flag_entry(
            kind=kind,
            enabled=enabled,
            variants=variants.get(flag_id, []),
            prerequisites=prerequisites,
            rules=rules.get(state_id, []),
            fallthrough=fallthrough,
            metadata=_metadata(owner, flag_type, risk, expires_on, state_version),
        )
    segment_docs = {
        key: {
            "include": list(include or []),
            "exclude": list(exclude or []),
            "when": list(conditions or []),
        }
        for key, include, exclude, conditions in Segment.objects.order_by("key").values_list(
            "key", "include", "exclude", "conditions"
        )
    }
    return {
        "format": FORMAT_VERSION,
        "environment": environment.key,
        "version": version,
        "etag": compute_etag(flag_docs, segment_docs),
        "flags": flag_docs,
        "segments": segment_docs,
    }


# Moved to flagapp.publishing (the one publish chain); still importable from here.
_MOVED = frozenset(
    {
        "DOCUMENT_CACHE_SECONDS",
        "cache_document_key",
        "cache_version_key",
        "latest",
        "publish",
        "publish_all",
    }
)


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from . import publishing

        return getattr(publishing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
