"""The blast radius of a change: how many sampled users it would move, before it is made.

Two entry points. :func:`preview` dry-runs a proposed change (applied through the services
and rolled back, :func:`flagapp.governance.proposals.documents_after`) and compares each
environment's document before and after; a change request stores the result when it is
proposed. :func:`radius_since_published` compares what the current transaction changed with
what is published now; the admin shows it before a direct change that moves users is
confirmed. Both compare with the pure :func:`flagapp.governance.blast_radius.compare` over
the trusted sample of recent contexts (``flagapp.sampling.preview_sample``); a change made
in several environments is added up, each user counted once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flagapp.conf import settings
from flagapp.documents import compile_environment
from flagapp.exceptions import FlagValidationError
from flagapp.models import Environment, Flag
from flagapp.publishing import latest
from flagapp.sampling import preview_sample

from .blast_radius import BlastRadius, compare
from .proposals import documents_after

__all__ = ["named_objects", "preview", "radius_since_published"]


def named_objects(change: Mapping[str, Any]) -> tuple[Flag | None, Environment | None]:
    """The flag and environment ``change`` names (None where it names none); a name that
    does not exist is refused as a ``FlagValidationError`` on that key."""
    flag = Flag.objects.filter(key=change.get("flag")).first() if change.get("flag") else None
    env_key = change.get("environment")
    environment = Environment.objects.filter(key=env_key).first() if env_key else None
    if change.get("flag") and flag is None:
        raise FlagValidationError({"flag": [f"no flag {change.get('flag')!r}"]})
    if env_key and environment is None:
        raise FlagValidationError({"environment": [f"no environment {env_key!r}"]})
    return flag, environment


def preview(change: Mapping[str, Any], *, contexts: Any = None) -> BlastRadius | None:
    """Dry-run ``change`` and return its blast radius (None when it names no flag: a segment
    or environment change is validated the same way, but not measured).

    The change is applied through the services inside a transaction that is then rolled
    back, and the environment is compiled in between: the "after" ruleset is exactly what
    the services would publish, for every kind of operation, and a change the services
    would refuse raises the same ``FlagValidationError`` / ``VersionConflict`` here. The
    rollback also discards the publish-on-commit callbacks. ``contexts`` overrides the
    sample (``flagapp.sampling.preview_sample``) -- a flag-level change (no environment)
    is previewed in every environment and the counts are added up.
    """
    flag, environment = named_objects(change)
    environments = [environment] if environment else list(Environment.objects.all())
    before = {env.pk: compile_environment(env) for env in environments} if flag else {}
    after = documents_after(
        change, environments if flag is not None else [], reason="blast-radius preview"
    )
    if flag is None:  # validated, but not about one flag (a segment, an environment)
        return None
    return _measure(flag.key, environments, before, after, contexts)


def radius_since_published(
    flag: Flag, environments: Any = None, *, contexts: Any = None
) -> BlastRadius | None:
    """The blast radius of what the current transaction changed: the latest *published*
    snapshot of each environment (what is served now) against the environment compiled
    inside this transaction (with the unpublished change). The admin uses it to show a
    direct change's blast radius before the user confirms it. None when the flag's
    outcome cannot change (no environment)."""
    envs = list(environments) if environments is not None else list(Environment.objects.all())
    if not envs:
        return None
    before: dict[int, Any] = {}
    for env in envs:
        snap = latest(env.key)
        before[env.pk] = snap.data if snap is not None else None
    after = {env.pk: compile_environment(env) for env in envs}
    return _measure(flag.key, envs, before, after, contexts)


def _measure(
    flag_key: str,
    environments: list[Environment],
    before: Mapping[int, Any],
    after: Mapping[int, Any],
    contexts: Any,
) -> BlastRadius:
    """Compare per environment; several environments are added up (``environment="*"``)."""
    limit = int(settings.BLAST_RADIUS_SAMPLE)
    examples = int(settings.BLAST_RADIUS_EXAMPLES)
    results = []
    for env in environments:
        if contexts is not None:
            sample = list(contexts)
            provenance: dict[str, Any] = {"size": len(sample), "sources": {"given": len(sample)}}
        else:
            trusted = preview_sample(env.key, limit)
            sample, provenance = trusted.contexts, trusted.as_dict()
        radius = compare(before[env.pk], after[env.pk], flag_key, sample, max_examples=examples)
        radius.sample = provenance
        results.append(radius)
    if len(results) == 1:
        return results[0]
    # Only the environments the change touches count: dividing by the contexts of an
    # environment whose flags did not change halved the share (50% where the
    # environment's own page said 100%).
    touched = [
        (env, radius)
        for env, radius in zip(environments, results, strict=True)
        if _flag_entries(before[env.pk], radius.flags) != _flag_entries(after[env.pk], radius.flags)
    ] or list(zip(environments, results, strict=True))
    total = BlastRadius(flag_key=flag_key, environment="*", sampled=0, changed=0)
    sources: dict[str, int] = {}
    # A user sampled in two environments is one user: counted and shown once.
    users: set[str] = set()
    changed_users: set[str] = set()
    shown: set[Any] = set()
    for env, radius in touched:
        total.sampled += radius.sampled - len(radius.sampled_keys & users)
        total.changed += radius.changed - len(radius.changed_keys & changed_users)
        users |= radius.sampled_keys
        changed_users |= radius.changed_keys
        for label, n in radius.transitions.items():
            key = f"{env.key}: {label}"
            total.transitions[key] = total.transitions.get(key, 0) + n
        for example in radius.examples:
            who = example.get("targetingKey")
            if len(total.examples) < examples and (who is None or who not in shown):
                shown.add(who)
                total.examples.append({**example, "environment": env.key})
        total.flags = list(dict.fromkeys(total.flags + radius.flags))
        for name, n in (radius.sample.get("sources") or {}).items():
            sources[f"{env.key}/{name}"] = n
    total.sample = {
        "size": total.sampled,
        "sources": sources,
        "restricted_to": results[0].sample.get("restricted_to") if results else None,
        "duplicates": sum(int(r.sample.get("duplicates", 0)) for _, r in touched),
        "capped": sum(int(r.sample.get("capped", 0)) for _, r in touched),
        "environments": [env.key for env, _ in touched],
    }
    total.sampled_keys, total.changed_keys = users, changed_users
    return total


def _flag_entries(doc: Any, keys: list[str]) -> Any:
    """The entries of ``keys`` (and the segments) in a compiled document, for telling
    whether a change touched an environment; None when nothing is published."""
    if doc is None:
        return None
    flags = doc.get("flags") or {}
    return ({k: flags.get(k) for k in keys}, doc.get("segments"))
