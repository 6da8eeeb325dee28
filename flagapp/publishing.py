"""The publish chain: from a committed change to the ruleset every process serves.

One module owns it: the outbox, :func:`publish`, :func:`latest`, the shared-cache keys, the
content hash comparison, the announcement, and the reconcile pass. Beside it, by concern
(their public names re-exported here): ``flagapp.assembly`` (the incremental document),
``flagapp.deltas`` (deltas from any base a client holds) and ``flagapp.reconciler`` (the
in-process reconciler thread). Drawn in text::

    services write (one transaction)
      ├─ the change (rows + history)
      └─ record(env_ids)  -> PublishOutbox rows, same transaction       (commits with it)
    COMMIT
      └─ on_commit: drain(env_ids)                                       (never raises)
           └─ publish(env)  per environment that still has outbox rows
                ├─ lock the Environment row (select_for_update, no_key)
                ├─ compile (flagapp.documents.compile_environment) -> etag = content hash
                ├─ delete the environment's visible outbox rows
                ├─ etag == latest snapshot's etag? -> nothing new stored
                ├─ parse once with the engine -> Ruleset (never store what it rejects)
                ├─ store Snapshot(version + 1, etag, document)
                └─ on_commit: announce(snapshot, ruleset)
                     ├─ cache: document, then the version pointer
                     └─ signals.snapshot_published(snapshot=, environment_key=, ruleset=)
                          ├─ flagapp.evaluation installs the Ruleset (no second parse)
                          └─ flagapp.sdk.notifier -> SSE streams (+ Redis pub/sub)

    reconcile()  (manage.py flagapp_reconcile, Celery beat, flagapp_run_tasks, or the
                  in-process thread of the embedded default; every RECONCILE_INTERVAL s)
      ├─ publish every environment that has outbox rows (drain)
      ├─ compile every environment; publish where the etag differs from the latest
      └─ re-announce where the shared cache's version pointer is behind the database

Why an outbox: publishing runs after COMMIT, so it can fail on its own (the connection drops
right after the commit, the process dies, a bug). The outbox row commits with the change, so
such a failure leaves evidence that the reconciler acts on within one interval; and the
author of the write is never told "500" for a change that is saved (the post-commit publish
logs its failure instead of raising).

Concurrency: publishers of one environment are serialised by the row lock on it (PostgreSQL)
and by ``flagapp_snapshot_unique_version`` (a racing duplicate version is an IntegrityError,
retried once on fresh data), so two reconcilers never store two versions of one content.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction

from . import assembly, deltas, metrics
from .conf import namespace, settings
from .deltas import _history as _history
from .deltas import delta_base_known, delta_from, forget_deltas
from .documents import FORMAT_VERSION, compile_entries, compile_environment, parse_change
from .signals import snapshot_published

if TYPE_CHECKING:
    from openfeature_provider.engine import Ruleset

    from .models import Environment, Snapshot

__all__ = [
    "DOCUMENT_CACHE_SECONDS",
    "FORMAT_VERSION",
    "ReconcileResult",
    "announce",
    "cache_document_key",
    "cache_version_key",
    "delta_base_known",
    "delta_from",
    "drain",
    "forget_deltas",
    "latest",
    "publish",
    "publish_all",
    "publish_if_changed",
    "reconcile",
    "record",
]

logger = logging.getLogger("flagapp")

#: How long a version's document stays in the shared cache. Readers that miss it load the
#: snapshot from the database; the version pointer itself never expires.
DOCUMENT_CACHE_SECONDS = 7 * 24 * 3600


def cache_version_key(environment_key: str) -> str:
    """The shared-cache key of an environment's newest published version number (namespaced
    per deployment, ``flagapp.conf.namespace``: deployments sharing a cache never mix)."""
    return f"flagapp:{namespace()}:snapshot:{environment_key}:version"


def cache_document_key(environment_key: str, version: int) -> str:
    """The shared-cache key of one published version's document (JSON text)."""
    return f"flagapp:{namespace()}:snapshot:{environment_key}:{version}"


# ---------------------------------------------------------------------------------------
# the outbox: written by the services' write path


def record(
    environment_ids: Iterable[int],
    using: str = DEFAULT_DB_ALIAS,
    *,
    flags: Iterable[str] | None = None,
    segments: Iterable[str] | None = None,
) -> None:
    """Record, in the current transaction, that these environments must be published, and
    publish them once it commits.

    Called by every service write (``flagapp.services._base.publish_on_commit``). Inside a
    savepoint that is rolled back, the rows and the callback go with it. Several writes in
    one transaction each queue a callback: the first publishes (and clears the rows); the
    later ones find no rows and make one cheap query each.

    ``flags`` / ``segments``: the keys the write touched (created, changed, archived or
    deleted), when the writer knows them — then the publish re-reads only those
    (``flagapp.assembly``); both None (the default) means "anything may have changed" and
    the publish compiles the whole environment.
    """
    from .models import PublishOutbox

    ids = sorted(set(environment_ids))
    if not ids:
        return
    rows = PublishOutbox.objects.using(using).bulk_create(
        [PublishOutbox(environment_id=env_id) for env_id in ids]
    )
    touched = None
    if flags is not None or segments is not None:
        touched = assembly.Touched(frozenset(flags or ()), frozenset(segments or ()))
    row_ids = [row.pk for row in rows]
    # Noted once the rows are committed (registered before the publish below, so it runs
    # first): a rolled-back write leaves no note that a later row with a reused id could
    # be mistaken for.
    transaction.on_commit(
        lambda: assembly.note_touched(using, row_ids, touched), using=using, robust=True
    )
    # Looked up at call time (not bound here) so a test can stand in for a dying process.
    transaction.on_commit(lambda: _after_commit(ids, using), using=using, robust=True)


def _after_commit(ids: list[int], using: str) -> None:
    drain(ids, using=using)


def drain(
    environment_ids: Iterable[int] | None = None, *, using: str = DEFAULT_DB_ALIAS
) -> list[Snapshot]:
    """Publish every environment (of ``environment_ids``, default all) that has outbox rows.

    Never raises: this runs after COMMIT, where an exception would turn a saved change into
    an error for its author. A failure is logged and leaves the rows for the reconciler. A
    connection broken by the failure is closed (outside a transaction only), so the caller's
    next query opens a fresh one instead of failing too.
    """
    from .models import Environment, PublishOutbox

    published: list[Snapshot] = []
    try:
        pending = PublishOutbox.objects.using(using)
        if environment_ids is not None:
            pending = pending.filter(environment_id__in=list(environment_ids))
        env_ids = sorted(set(pending.values_list("environment_id", flat=True)))
        envs = list(Environment.objects.using(using).filter(pk__in=env_ids))
    except Exception:
        logger.exception("flagapp: could not read the publish outbox; the reconciler will")
        _recover_connection(using)
        return published
    for env in envs:
        try:
            published.append(publish(env, using=using))
        except Exception:
            metrics.publish_failed(env.key)
            logger.exception(
                "flagapp: publishing the %s snapshot failed after commit; the change is saved "
                "and the reconciler will publish it",
                env.key,
            )
            _recover_connection(using)
    return published


def _recover_connection(using: str) -> None:
    connection = connections[using]
    if connection.in_atomic_block:
        return
    try:
        connection.close_if_unusable_or_obsolete()
    except Exception:
        logger.debug("flagapp: closing a broken connection failed", exc_info=True)


# ---------------------------------------------------------------------------------------
# publish, announce, latest


def publish(environment: Environment, *, using: str = DEFAULT_DB_ALIAS) -> Snapshot:
    """Compile ``environment``, validate with the engine, store it as the next version and,
    once committed, announce it (cache + signal). Clears the environment's outbox rows.

    When the content equals the latest snapshot's (same etag: the content hash), nothing new
    is stored and the latest snapshot is returned: versions only move when what is served
    changes. Concurrent publishers of one environment are serialised by a row lock on it;
    a duplicate version (a race the lock does not cover, e.g. SQLite) is retried once.
    """
    return publish_if_changed(environment, using=using)[0]


def publish_if_changed(
    environment: Environment, *, using: str = DEFAULT_DB_ALIAS
) -> tuple[Snapshot, bool]:
    """:func:`publish`, also saying whether *this call* stored a new snapshot (False when
    the content was already the latest, e.g. another publisher got there first)."""
    started = time.perf_counter()
    try:
        result = _publish_once(environment, using)
    except IntegrityError:
        # Another publisher stored this version first; its content may already be ours.
        result = _publish_once(environment, using)
    metrics.published(environment.key, time.perf_counter() - started, created=result[1])
    return result


def _publish_once(environment: Environment, using: str) -> tuple[Snapshot, bool]:
    from .models import Environment as EnvironmentModel
    from .models import PublishOutbox
    from .models import Snapshot as SnapshotModel

    with transaction.atomic(using=using):
        # FOR NO KEY UPDATE (PostgreSQL): publishers of this environment wait for each other,
        # but writers inserting outbox rows (a foreign key: FOR KEY SHARE) do not wait for a
        # publisher's compile.
        env = (
            EnvironmentModel.objects.using(using)
            .select_for_update(no_key=True)
            .get(pk=environment.pk)
        )
        # Rows visible now are committed (or ours): the compile below includes their changes.
        outbox = list(
            PublishOutbox.objects.using(using)
            .filter(environment_id=env.pk)
            .values_list("pk", flat=True)
        )
        previous = (
            SnapshotModel.objects.using(using)
            .filter(environment=env)
            .order_by("-version")
            .defer("document")
            .first()
        )
        built, changes = _assemble(env, outbox, previous, using)
        if outbox:
            PublishOutbox.objects.using(using).filter(pk__in=outbox).delete()
        env_key = env.key
        if previous is not None and previous.etag == built.etag:
            transaction.on_commit(
                lambda: _committed(using, env.pk, previous.version, built, outbox),
                using=using,
                robust=True,
            )
            return previous, False
        version = (previous.version if previous is not None else 0) + 1
        delta = _delta(built, changes, version, previous)
        # never store what an evaluator would reject; from the last served ruleset plus the
        # delta (the engine compiles what changed), else the whole document incrementally
        ruleset = parse_change(built.document(version), delta)
        snapshot = SnapshotModel.objects.using(using).create(
            environment=env, version=version, etag=built.etag, document=built.text(version)
        )
        keep = settings.get("SNAPSHOT_KEEP")
        if keep:
            SnapshotModel.objects.using(using).filter(
                environment=env, version__lte=snapshot.version - int(keep)
            ).delete()
        delta_text = _delta_text(delta)

        def after_commit() -> None:
            _committed(using, env.pk, version, built, outbox)
            announce(snapshot, env_key, ruleset, previous=previous, delta=delta_text)

        transaction.on_commit(after_commit, using=using, robust=True)
    logger.info("published %s snapshot v%s (%s)", env_key, snapshot.version, snapshot.etag)
    return snapshot, True


def _assemble(
    env: Environment, outbox: list[int], previous: Snapshot | None, using: str
) -> tuple[assembly.Assembly, assembly.Changes | None]:
    """The environment's document now, and what changed since ``previous`` (None: unknown).

    Incremental (only the touched flags and segments are read) when every outbox row says
    what it touched and the assembly held here is exactly ``previous``; otherwise a full
    compile (flagapp.assembly explains why that is equal to the truth)."""
    touched = assembly.touched_by(using, outbox) if outbox else None
    base = (
        assembly.bound(using, env.pk, previous.version, previous.etag)
        if previous is not None
        else None
    )
    if touched is not None and base is not None:
        flags, segments = compile_entries(
            env, flag_keys=touched.flags, segment_keys=touched.segments
        )
        return base.updated(touched, flags, segments)
    flags, segments = compile_entries(env)
    built = assembly.Assembly.full(env.key, flags, segments)
    older = assembly.held(using, env.pk)
    if base is not None:
        return built, built.changes_from(base)
    if older is not None and previous is not None and older.etag == previous.etag:
        return built, built.changes_from(older)
    return built, None


def _committed(
    using: str, env_id: int, version: int, built: assembly.Assembly, outbox: list[int]
) -> None:
    assembly.remember(using, env_id, version, built)
    assembly.forget_touched(using, outbox)


def _delta(
    built: assembly.Assembly,
    changes: assembly.Changes | None,
    version: int,
    previous: Snapshot | None,
) -> dict[str, Any] | None:
    """The delta from ``previous`` when what changed is known, else None."""
    if changes is None or previous is None:
        return None
    return built.delta(
        changes, version=version, base_version=previous.version, base_etag=previous.etag
    )


def _delta_text(delta: dict[str, Any] | None) -> str | None:
    """The announced delta as JSON text; None: unknown (``announce`` then works it out)."""
    if delta is None:
        return None
    try:
        return json.dumps(delta, separators=(",", ":"), ensure_ascii=False)
    except Exception:  # never: the entries came out of the database's JSON
        logger.warning("flagapp: could not encode the delta", exc_info=True)
        return None


def announce(
    snapshot: Snapshot,
    environment_key: str,
    ruleset: Ruleset | None = None,
    *,
    previous: Snapshot | None = None,
    delta: str | None = None,
) -> None:
    """Tell every process about ``snapshot``: the shared cache (document first, then the
    version pointer, so a reader that sees the new number finds its document), then
    ``snapshot_published`` carrying the parsed ``ruleset`` (receivers need not parse again)
    and, given the ``previous`` snapshot, the delta from it (``delta=`` JSON text,
    ``delta_base=`` its etag): computed once (by the publisher from what it changed, given
    as ``delta``, else here), the notifier sends it to every process's streams
    (docs/protocol.md, "Deltas").

    Never raises (it runs after commit): a cache outage is logged; the reconciler re-announces
    a version the cache is behind on, and readers fall back to the database meanwhile.
    """
    try:
        cache = caches[settings.CACHE_ALIAS]
        cache.set(
            cache_document_key(environment_key, snapshot.version),
            snapshot.document,
            DOCUMENT_CACHE_SECONDS,
        )
        cache.set(cache_version_key(environment_key), snapshot.version, None)
    except Exception:
        logger.exception(
            "flagapp: could not write snapshot v%s of %s to the shared cache",
            snapshot.version,
            environment_key,
        )
    if delta is None:  # the publisher did not know what changed: work it out
        delta = _announced_delta(environment_key, snapshot, ruleset, previous)
    for receiver, result in snapshot_published.send_robust(
        sender=type(snapshot),
        snapshot=snapshot,
        environment_key=environment_key,
        ruleset=ruleset,
        delta=delta,
        delta_base=previous.etag if delta is not None and previous is not None else None,
    ):
        if isinstance(result, Exception):
            logger.error(
                "flagapp: snapshot_published receiver %r failed",
                receiver,
                exc_info=(type(result), result, result.__traceback__),
            )


def _announced_delta(
    environment_key: str, snapshot: Snapshot, ruleset: Ruleset | None, previous: Snapshot | None
) -> str | None:
    """The delta from ``previous`` to ``snapshot`` as JSON text, or None (never raises)."""
    if previous is None or ruleset is None or not ruleset.raw or previous.etag == snapshot.etag:
        return None
    try:
        if not deltas.is_held(environment_key, previous.etag):
            # the publisher has the previous document at hand
            deltas.remember_document(environment_key, previous.etag, json.loads(previous.document))
        document = dict(ruleset.raw)
        document["version"], document["etag"] = snapshot.version, snapshot.etag
        delta = delta_from(environment_key, previous.etag, document, build=ruleset.build)
        if delta is None:
            return None
        return json.dumps(delta, separators=(",", ":"), ensure_ascii=False)
    except Exception:
        logger.warning(
            "flagapp: no delta for %s v%s", environment_key, snapshot.version, exc_info=True
        )
        return None


def latest(environment_key: str, *, using: str = DEFAULT_DB_ALIAS) -> Snapshot | None:
    """The newest snapshot of an environment, or None (one query)."""
    from .models import Snapshot as SnapshotModel

    return (
        SnapshotModel.objects.using(using)
        .filter(environment__key=environment_key)
        .order_by("-version")
        .first()
    )


def publish_all(*, using: str = DEFAULT_DB_ALIAS) -> list[Snapshot]:
    """Publish every environment (used by import and management commands)."""
    from .models import Environment as EnvironmentModel

    return [publish(env, using=using) for env in EnvironmentModel.objects.using(using).all()]


# ---------------------------------------------------------------------------------------
# the reconciler


@dataclass
class ReconcileResult:
    """What one reconcile pass did. ``republished``: ``(environment key, version, etag)`` of
    each new snapshot stored; ``reannounced``: environments whose shared-cache pointer was
    behind; ``failed``: environments whose compile or publish raised (logged)."""

    checked: int = 0
    republished: list[tuple[str, int, str]] = field(default_factory=list)
    reannounced: list[tuple[str, int]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "republished": [
                {"environment": k, "version": v, "etag": e} for k, v, e in self.republished
            ],
            "reannounced": [{"environment": k, "version": v} for k, v in self.reannounced],
            "failed": list(self.failed),
        }


def reconcile(*, using: str = DEFAULT_DB_ALIAS) -> ReconcileResult:
    """Make what is published equal what is stored, for every environment.

    Compiles each environment without locking and compares the content hash (etag) with the
    latest snapshot's; only a difference — or outbox rows to clear — takes the lock and
    publishes. So a pass with nothing to do stores nothing and takes no lock. Also
    re-announces a snapshot the shared cache has not heard of (an announce lost after the
    snapshot's commit). Safe to run anywhere, any number of times, concurrently.
    """
    from .models import Environment, PublishOutbox

    result = ReconcileResult()
    pending = set(PublishOutbox.objects.using(using).values_list("environment_id", flat=True))
    for env in Environment.objects.using(using).order_by("pk"):
        result.checked += 1
        try:
            before = latest(env.key, using=using)
            if env.pk in pending or before is None:
                needs_publish = True
            else:
                needs_publish = compile_environment(env)["etag"] != before.etag
            if needs_publish:
                snap, created = publish_if_changed(env, using=using)
                if created:
                    result.republished.append((env.key, snap.version, snap.etag))
                    continue
                before = snap
            if before is not None and _cache_behind(env.key, before.version):
                announce(before, env.key)
                result.reannounced.append((env.key, before.version))
        except Exception:
            metrics.publish_failed(env.key)
            logger.exception("flagapp: reconciling the %s snapshot failed", env.key)
            result.failed.append(env.key)
            _recover_connection(using)
    for key, version, etag in result.republished:
        logger.warning("flagapp: reconcile published %s v%s (%s)", key, version, etag)
    return result


def _cache_behind(environment_key: str, version: int) -> bool:
    """True when the shared cache points at an older version than the database's latest.
    An empty pointer is not "behind": readers then load the latest from the database."""
    try:
        pointer = caches[settings.CACHE_ALIAS].get(cache_version_key(environment_key))
    except Exception:
        return False
    try:
        return pointer is not None and int(pointer) < version
    except (TypeError, ValueError):
        return True
