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

from .conf import settings
from .signals import snapshot_published

if TYPE_CHECKING:
    from openfeature_provider.engine.types import Ruleset

    from .models import Environment, Segment, Snapshot

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

#: How long a version's document stays in the shared cache. Readers that miss it load the
#: snapshot from the database; the version pointer itself never expires.
DOCUMENT_CACHE_SECONDS = 7 * 24 * 3600


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
        keep = settings.get("SNAPSHOT_KEEP")
        if keep:
            SnapshotModel.objects.filter(
                environment=env, version__lte=snapshot.version - int(keep)
            ).delete()
        env_key = env.key
        transaction.on_commit(lambda: _announce(snapshot, env_key))
    logger.info("published %s snapshot v%s (%s)", env_key, snapshot.version, snapshot.etag)
    return snapshot


def _announce(snapshot: Snapshot, environment_key: str) -> None:
    cache = caches[settings.CACHE_ALIAS]
    # Document first, then the version pointer: a reader that sees the new version number
    # always finds its document.
    cache.set(
        cache_document_key(environment_key, snapshot.version),
        snapshot.document,
        DOCUMENT_CACHE_SECONDS,
    )
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
