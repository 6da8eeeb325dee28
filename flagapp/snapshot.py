"""Compile the ORM's flag configuration into ruleset snapshots (format v1) and publish them.

Why: evaluation never touches the database. A change is compiled once, here, into an
immutable JSON document per environment (validated by the engine's own parser, so what is
stored is exactly what every evaluator accepts), stored with a version and an ETag, and
announced through the shared Django cache and :data:`flagapp.signals.snapshot_published`.
This is the only module that reads the ORM to build what is evaluated.

- :func:`compile_environment` — models -> format-v1 document (bounded number of queries).
- :func:`publish` — compile, validate, store as the next version, then (on commit) set
  ``flagapp:snapshot:<env>:<version>`` and ``flagapp:snapshot:<env>:version`` in the cache
  ``FLAGAPP["CACHE_ALIAS"]`` and send ``snapshot_published``.
- :func:`latest` — the newest stored snapshot of an environment (one query).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.db import transaction
from django.db.models import Prefetch

from .conf import settings
from .signals import snapshot_published

if TYPE_CHECKING:
    from openfeature_provider.engine.types import Ruleset

    from .models import Environment, Flag, FlagState, Segment, Snapshot

__all__ = [
    "FORMAT_VERSION",
    "cache_document_key",
    "cache_version_key",
    "canonical_json",
    "compile_environment",
    "compute_etag",
    "flag_entry",
    "latest",
    "parse",
    "publish",
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


def cache_version_key(environment_key: str) -> str:
    return f"flagapp:snapshot:{environment_key}:version"


def cache_document_key(environment_key: str, version: int) -> str:
    return f"flagapp:snapshot:{environment_key}:{version}"


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


def flag_metadata(flag: Flag, state: FlagState | None) -> dict[str, Any]:
    """Metadata carried by every resolution of the flag (OpenFeature flag metadata: strings,
    numbers and booleans only)."""
    meta: dict[str, Any] = {
        "owner": flag.owner.name,
        "type": flag.flag_type,
        "version": state.version if state is not None else 0,
        "risk": flag.risk,
    }
    if flag.expires_on is not None:
        meta["expiresOn"] = flag.expires_on.isoformat()
    return meta


def segment_entry(segment: Segment) -> dict[str, Any]:
    return {
        "include": list(segment.include or []),
        "exclude": list(segment.exclude or []),
        "when": list(segment.conditions or []),
    }


def _state_entry(flag: Flag, state: FlagState | None) -> dict[str, Any]:
    variants = [(v.key, v.value) for v in flag.variants.all()]
    if state is None:
        # A flag created before this environment existed and never configured here: off.
        return flag_entry(
            kind=flag.kind,
            enabled=False,
            variants=variants,
            prerequisites=[],
            rules=[],
            fallthrough=None,
            metadata=flag_metadata(flag, None),
        )
    return flag_entry(
        kind=flag.kind,
        enabled=state.enabled,
        variants=variants,
        prerequisites=state.prerequisites,
        rules=((r.rule_id, r.conditions, r.serve) for r in state.rules.all()),
        fallthrough=state.fallthrough,
        metadata=flag_metadata(flag, state),
    )


def compile_environment(environment: Environment, *, version: int = 0) -> dict[str, Any]:
    """The format-v1 document of one environment (archived flags left out). Five queries
    whatever the number of flags: flags+owners, variants, states, rules, segments."""
    from .models import Flag, FlagState, Segment, TargetingRule, Variant

    states_qs = FlagState.objects.filter(environment_id=environment.pk).prefetch_related(
        Prefetch("rules", queryset=TargetingRule.objects.order_by("order", "id"))
    )
    flags = (
        Flag.objects.filter(archived=False)
        .select_related("owner")
        .prefetch_related(
            Prefetch("variants", queryset=Variant.objects.order_by("order", "key")),
            Prefetch("states", queryset=states_qs, to_attr="env_states"),
        )
        .order_by("key")
    )
    flag_docs: dict[str, Any] = {}
    for flag in flags:
        env_states: list[FlagState] = flag.env_states
        flag_docs[flag.key] = _state_entry(flag, env_states[0] if env_states else None)
    segment_docs = {s.key: segment_entry(s) for s in Segment.objects.order_by("key")}
    return {
        "format": FORMAT_VERSION,
        "environment": environment.key,
        "version": version,
        "etag": compute_etag(flag_docs, segment_docs),
        "flags": flag_docs,
        "segments": segment_docs,
    }


def publish(environment: Environment) -> Snapshot:
    """Compile ``environment``, validate with the engine, store it as the next version and,
    once committed, announce it (cache + signal).

    When the content equals the latest snapshot's (same ETag), nothing new is stored and the
    latest snapshot is returned: versions only move when what is served changes.
    Concurrent publishers of one environment are serialised by a row lock on it.
    """
    from .models import Environment as EnvironmentModel
    from .models import Snapshot as SnapshotModel

    with transaction.atomic():
        env = EnvironmentModel.objects.select_for_update().get(pk=environment.pk)
        document = compile_environment(env)
        previous = SnapshotModel.objects.filter(environment=env).order_by("-version").first()
        if previous is not None and previous.etag == document["etag"]:
            return previous
        document["version"] = (previous.version if previous is not None else 0) + 1
        parse(document)  # never store what an evaluator would reject
        snapshot = SnapshotModel.objects.create(
            environment=env,
            version=document["version"],
            etag=document["etag"],
            document=json.dumps(document, separators=(",", ":"), ensure_ascii=False),
        )
        env_key = env.key
        transaction.on_commit(lambda: _announce(snapshot, env_key))
    logger.info("published %s snapshot v%s (%s)", env_key, snapshot.version, snapshot.etag)
    return snapshot


def _announce(snapshot: Snapshot, environment_key: str) -> None:
    cache = caches[settings.CACHE_ALIAS]
    # Document first, then the version pointer: a reader that sees the new version number
    # always finds its document.
    cache.set(cache_document_key(environment_key, snapshot.version), snapshot.document, None)
    cache.set(cache_version_key(environment_key), snapshot.version, None)
    snapshot_published.send(
        sender=type(snapshot), snapshot=snapshot, environment_key=environment_key
    )


def latest(environment_key: str) -> Snapshot | None:
    """The newest snapshot of an environment, or None (one query)."""
    from .models import Snapshot as SnapshotModel

    return (
        SnapshotModel.objects.filter(environment__key=environment_key).order_by("-version").first()
    )


def publish_all() -> list[Snapshot]:
    """Publish every environment (used by import and management commands)."""
    from .models import Environment as EnvironmentModel

    return [publish(env) for env in EnvironmentModel.objects.all()]
