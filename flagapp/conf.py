"""flagapp's settings: the ``FLAGAPP`` dict of the Django settings over documented defaults.

Why a settings object rather than reading ``django.conf.settings.FLAGAPP`` everywhere: one
place holds the defaults (documented in docs/settings.md), values are read at call time (so
``override_settings`` in tests and per-deployment settings both work), and nothing is ever
written onto ``django.conf.settings``. The merged view is rebuilt when Django sends
``setting_changed`` for ``FLAGAPP``.

Usage::

    from flagapp.conf import settings
    settings.ENVIRONMENT        # "production" unless FLAGAPP["ENVIRONMENT"] says otherwise
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

from django.db import connections  # lazy: importing it reads no settings

__all__ = ["DEFAULTS", "FlagappSettings", "namespace", "settings"]

#: Every key flagapp reads, with its default. Add new keys here, with a comment, and document
#: them in docs/settings.md.
DEFAULTS: dict[str, Any] = {
    # The environment this Django process evaluates flags in (flagapp.evaluate, template tags).
    "ENVIRONMENT": "production",
    # Flag keys must match this (re.fullmatch). Default: team.domain.purpose-style slugs,
    # 2 to 4 dot-separated parts of lowercase letters/digits joined by "-" or "_".
    "FLAG_KEY_PATTERN": r"^[a-z0-9]+(?:[-_][a-z0-9]+)*(?:\.[a-z0-9]+(?:[-_][a-z0-9]+)*){1,3}$",
    # Django cache alias shared by every process: published snapshots are announced there.
    "CACHE_ALIAS": "default",
    # Seconds between two checks for a newer snapshot version: a change made in any process
    # is served within this (docs/deploy.md). With a shared cache the check is one cache read;
    # with a per-process cache (LocMem, Dummy) it is one small query.
    "CACHE_CHECK_INTERVAL": 1.0,
    # Whether CACHE_ALIAS is seen by every process: None decides from the backend class
    # (LocMem and Dummy are per process, everything else shared); True/False forces it.
    "SHARED_CACHE": None,
    # Deployment namespace in every Redis channel and shared-cache key flagapp uses, so two
    # deployments (or test runs) on one Redis never see each other's announcements. None:
    # derived from the default database (a short hash of ENGINE, HOST, PORT and NAME), so
    # every process of one deployment agrees without configuration.
    "NAMESPACE": None,
    # A release flag's expiry date may be at most this many days after it is set.
    "RELEASE_EXPIRY_MAX_DAYS": 180,
    # --- In-process evaluation (flagapp.evaluation, flagapp.context; docs/django.md) ---
    # request -> evaluation context: None (flagapp.context.default_context), a callable or a
    # dotted path to one taking the request and returning a mapping.
    "CONTEXT_BUILDER": None,
    # META key of a forwarding header to read the client IP from (first hop), e.g.
    # "HTTP_X_FORWARDED_FOR" behind a trusted proxy; None: REMOTE_ADDR only.
    "CLIENT_IP_HEADER": None,
    # Flag types that must carry an expiry date.
    "EXPIRY_REQUIRED_TYPES": ["release"],
    # Set True when several processes serve the app and CACHE_ALIAS is a per-process cache
    # (LocMem) on purpose (e.g. tests): silences check flagapp.W001.
    "SINGLE_PROCESS": False,
    # Turning a flag off (kill switch) needs no change request even where approval is
    # required: it serves the code's own default, the safe direction.
    "KILL_SWITCH_BYPASSES_APPROVAL": True,
    # Seconds between two passes of the in-process reconciler (flagapp.publishing), which
    # publishes a committed change whose post-commit publish failed and any environment
    # whose latest snapshot differs from its stored configuration: the bound on staleness
    # after such a failure. 0 disables the thread (then run flagapp_reconcile some other way).
    "RECONCILE_INTERVAL": 30.0,
    # Run that reconciler thread in each server process: None (auto) = when no Celery beat
    # does it (no CELERY_BROKER_URL, or CELERY_TASK_ALWAYS_EAGER); True/False to force.
    "RECONCILE_IN_PROCESS": None,
    # Published snapshots kept per environment (older rows are deleted on publish; the
    # history tables keep the audit trail); None keeps every snapshot.
    "SNAPSHOT_KEEP": 500,
    # --- SDK and OFREP server surfaces (flagapp.sdk; docs/api.md, docs/deploy.md) ---
    # How snapshot announcements reach the SSE streams of every process: "local" (in-process,
    # the embedded default) or "redis" (pub/sub on channel flagapp:<NAMESPACE>:snapshots at
    # REDIS_URL).
    "NOTIFIER": "local",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    # The Redis listener's liveness bound (seconds): after this much silence it PINGs its
    # subscription and reconnects when no answer comes within the same time, then re-checks
    # the store for what it missed (flagapp.sdk.notifier; docs/deploy.md).
    "NOTIFIER_HEALTH_SECONDS": 5.0,
    # Seconds between two SSE heartbeats (comment lines) on /sdk/v1/stream.
    "STREAM_HEARTBEAT_SECONDS": 15.0,
    # Seconds a stream stays open before the server ends it (the client reconnects); 0 = never.
    "STREAM_MAX_SECONDS": 3600.0,
    # The SSE "retry:" hint (milliseconds) a client waits before reconnecting.
    "STREAM_RETRY_MS": 2000,
    # Cache-Control of GET /sdk/v1/ruleset: revalidate every time (304s are cheap); see
    # docs/deploy.md before letting a CDN cache it.
    "RULESET_CACHE_CONTROL": "private, no-cache",
    # Deltas (docs/protocol.md): versions per environment whose per-entry digests a process
    # keeps as delta bases (older bases are read from the stored snapshots, SNAPSHOT_KEEP),
    # and the largest delta carried inline in a stream announcement (bigger: the client
    # fetches it).
    "DELTA_HISTORY": 16,
    "STREAM_DELTA_MAX_BYTES": 65_536,
    # Before answering 304, a process re-checks the shared cache for a newer snapshot if it
    # has not done so for this long (seconds): no stale 304 right after an announcement.
    "RULESET_RECHECK_SECONDS": 0.05,
    # In-process cache of SDK key lookups (seconds): bounds how long a revocation takes to
    # reach a process that misses the notifier's broadcast.
    "SDK_KEY_CACHE_SECONDS": 30.0,
    # Database outage (stale-while-error): a key this process authenticated keeps working
    # on its expired cache entry for at most this many seconds past SDK_KEY_CACHE_SECONDS
    # while the database is unreachable (uncached keys get 503 + Retry-After); the database
    # is retried at most every SDK_KEY_OUTAGE_RETRY_SECONDS per key and process.
    "SDK_KEY_STALE_IF_ERROR": 600.0,
    "SDK_KEY_OUTAGE_RETRY_SECONDS": 5.0,
    # A key's last_used_at is written at most this often (seconds) per process.
    "SDK_KEY_LAST_USED_INTERVAL": 300.0,
    # Token buckets per key (or client address without a key): rate per second and burst;
    # a scope set to None is unlimited. Per key means per fleet: every instance of a service
    # shares its key, so "sdk" (ruleset fetches) fits 1,000 instances polling every second
    # (304s cost ~0.3 ms of server CPU each) and "stream" (connects) a fleet of 10,000
    # reconnecting at once after a deploy, and "events" 1,000 instances each posting a batch a
    # second, or a deploy's backlog of several batches each (docs/scale.md, "Fleets").
    "RATE_LIMITS": {
        "sdk": {"rate": 2000.0, "burst": 4000},
        "stream": {"rate": 500.0, "burst": 10000},
        # requests without a valid key, per client address (all scopes)
        "unauthenticated": {"rate": 10.0, "burst": 60},
        "ofrep": {"rate": 2000.0, "burst": 4000},
        "events": {"rate": 1000.0, "burst": 5000},
    },
    # Where the buckets live: "cache" (the Django cache below; shared when it is), "redis"
    # (REDIS_URL directly, atomic, the production choice) or "local" (per process).
    "RATE_LIMIT_STORE": "cache",
    # "redis" store: a process leases this many seconds' worth of a key's rate at a time.
    "RATE_LIMIT_LEASE_SECONDS": 0.1,
    # Cache alias holding the rate-limit buckets when RATE_LIMIT_STORE is "cache"
    # (None: CACHE_ALIAS).
    "RATE_LIMIT_CACHE": None,
    # Largest request body (bytes) of the OFREP and other SDK endpoints, and the deepest
    # JSON nesting accepted in an OFREP context or an event (else a 413 / 400 naming it).
    "SDK_MAX_BODY_BYTES": 65_536,
    "SDK_JSON_MAX_DEPTH": 64,
    # OFREP from browsers (docs/interop.md, "Browsers"): the origins allowed to call
    # /ofrep/v1/* cross-origin, exact "scheme://host[:port]" strings, or "*" for any origin
    # (safe: flagapp never sends Access-Control-Allow-Credentials; keys travel in headers);
    # and how long (seconds) a browser may cache a preflight answer.
    "OFREP_CORS_ORIGINS": [],
    "OFREP_CORS_MAX_AGE": 600,
    # Advertise the bulk answer's SSE eventStreams (OFREP ADR-0008): clients that support it
    # hold a GET /ofrep/v1/event-stream open (needs ASGI, like /sdk/v1/stream).
    "OFREP_EVENT_STREAMS": True,
    # POST /sdk/v1/events: largest body (bytes, else 413) and most events per batch.
    "EVENTS_MAX_BODY_BYTES": 1_048_576,
    "EVENTS_MAX_BATCH": 1000,
    # Seconds an X-Flagapp-Batch-Id is remembered per SDK key (a retry within it is stored
    # once); older ids are pruned.
    "EVENTS_BATCH_ID_RETENTION": 7 * 24 * 3600,
    # Recent evaluation contexts kept per environment for the blast-radius preview.
    "CONTEXT_SAMPLE_SIZE": 1000,
    # Share of in-process evaluations whose context is offered to the sample (0..1).
    "CONTEXT_SAMPLE_RATE": 0.05,
    # In-process evaluation counts and sampled contexts are written at most this often.
    "SAMPLING_FLUSH_SECONDS": 10.0,
    # --- Exposures and track() of this process (flagapp.exposures; docs/observability.md) ---
    # Record flagapp.evaluate's evaluations that served a variant (flag_is_active, the
    # template tags, decorators and mixins included) as exposure events, stored with the
    # SDKs' events (experiments, stored-events guardrails). "observed" (default): only flags
    # something reads (a running experiment, a guarded rollout: marked in the snapshot), the
    # others are only counted; True: every evaluation; False: none. evaluate(...,
    # record=False) turns it off for one call.
    "RECORD_EXPOSURES": "observed",
    # Share of those evaluations recorded (0..1). Experiments and guardrail rates need 1.0.
    "EXPOSURE_SAMPLE_RATE": 1.0,
    # Exposures and track() events buffered per process between two writes, at most (the
    # oldest are dropped and counted; a half-full buffer is written after the next response).
    "EVENT_BUFFER_SIZE": 10_000,
    # OpenTelemetry feature_flag.evaluation events for flagapp.evaluate (flagapp.telemetry;
    # needs the "otel" extra): False, True, or a dict of options (log_records, span_events,
    # include_value, include_context_id).
    "OPENTELEMETRY": False,
    # --- Governance and lifecycle (flagapp.governance; docs/governance.md) ---
    # Expiry reminders: the first mail this many days before the expiry date, one on the
    # day, then one every REMINDER_OVERDUE_EVERY_DAYS days while overdue.
    "REMINDER_DAYS_BEFORE": 7,
    "REMINDER_OVERDUE_EVERY_DAYS": 7,
    # Sender of reminder and report mails (None: Django's DEFAULT_FROM_EMAIL).
    "REMINDER_FROM_EMAIL": None,
    # A flag not evaluated for this many days is stale; a release flag serving one variant
    # everywhere, unchanged for this many days, is ready to remove.
    "STALE_DAYS": 30,
    # Addresses the periodic stale-flag report is mailed to ([]: only logged).
    "STALE_REPORT_EMAILS": [],
    # --- Notifications: webhooks, Slack, owner email (flagapp.notifications) ---
    # Seconds to open the TCP (and TLS) connection to a webhook endpoint, and per socket
    # read (also the bound on reading the whole response).
    "WEBHOOK_CONNECT_TIMEOUT": 3.0,
    "WEBHOOK_READ_TIMEOUT": 10.0,
    # At most this many bytes of a response are read (kept as the attempt's excerpt).
    "WEBHOOK_RESPONSE_MAX_BYTES": 4096,
    # Attempts per delivery (webhook, Slack or email) before it is marked failed; the wait
    # after the n-th failure is WEBHOOK_BACKOFF_SECONDS * 2 ** (n - 1), capped.
    "WEBHOOK_MAX_ATTEMPTS": 8,
    "WEBHOOK_BACKOFF_SECONDS": 30.0,
    "WEBHOOK_BACKOFF_MAX_SECONDS": 3600.0,
    # Notification events (and their deliveries and attempts) older than this many days are
    # deleted by the periodic deliver_due_notifications once none is pending; None keeps all.
    "NOTIFICATION_KEEP_DAYS": 30,
    # Blast-radius preview: at most this many recent contexts, and this many examples.
    "BLAST_RADIUS_SAMPLE": 1000,
    "BLAST_RADIUS_EXAMPLES": 5,
    # Each SDK key's contexts make up at most this share of BLAST_RADIUS_SAMPLE (and of the
    # stored sample, CONTEXT_SAMPLE_SIZE): one key holder cannot rig a preview.
    "BLAST_RADIUS_MAX_SOURCE_SHARE": 0.2,
    # Sources the preview samples: None = all; else a list of "in-process" and/or SDK key
    # public ids (or "sdk:<public id>") whose posted contexts are trusted.
    "BLAST_RADIUS_SOURCES": None,
    # flagapp_code_refs: {name: regex with a (?P<key>...) group} or a list of regexes
    # (None: flagapp.governance.coderefs.DEFAULT_PATTERNS), file extensions scanned (None:
    # the defaults) and keys exempt from the dead/unknown checks.
    "CODE_REF_PATTERNS": None,
    "CODE_REF_EXTENSIONS": None,
    "CODE_REF_IGNORE": [],
    # --- Rollouts and experiments (flagapp.rollouts; docs/rollouts.md) ---
    # Guardrails judge the current step's events; a number of seconds judges only the
    # trailing window (clamped to the step start): a late spike is not diluted by a long
    # healthy step, at the price of needing the minimum sample within the window.
    "ROLLOUT_GUARDRAIL_WINDOW": None,
    # Prometheus metric source: {"url": "http://prometheus:9090", "queries": {name: PromQL
    # template}, "timeout": 5.0, "headers": {}}; None: only stored SDK events.
    "ROLLOUT_PROMETHEUS": None,
    # --- Prometheus metrics (flagapp.metrics, GET /metrics; docs/observability.md) ---
    # Record metrics in this process (needs the "metrics" extra, prometheus-client).
    "METRICS_ENABLED": True,
    # Who may read /metrics: a bearer token (Prometheus' `authorization` credentials; None:
    # no token accepted) or a client address in these networks (CLIENT_IP_HEADER applies).
    "METRICS_TOKEN": None,
    "METRICS_ALLOW": ["127.0.0.1/32", "::1/128"],
    # A tracking event counts for the variant of the user's latest exposure to each flag
    # within this many seconds before it (flagapp_events_total, flagapp_event_value).
    "METRICS_ATTRIBUTION_SECONDS": 86400,
    # Tracking event keys attributed to flags (None: every key). Each attributed key costs
    # flags x variants series (x buckets for the value histogram): list the guarded ones
    # when many event keys are tracked.
    "METRICS_ATTRIBUTED_EVENTS": None,
    # Buckets of flagapp_event_value (None: flagapp.metrics.DEFAULT_VALUE_BUCKETS, 1..10000).
    "METRICS_VALUE_BUCKETS": None,
}


class FlagappSettings:
    """Attribute access to ``FLAGAPP`` merged over :data:`DEFAULTS`, cached until reloaded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._merged: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        from django.conf import settings as django_settings

        user = getattr(django_settings, "FLAGAPP", None) or {}
        merged = dict(DEFAULTS)
        merged.update(user)
        return merged

    @property
    def as_dict(self) -> dict[str, Any]:
        merged = self._merged
        if merged is None:
            with self._lock:
                if self._merged is None:
                    self._merged = self._load()
                merged = self._merged
        return merged

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.as_dict[name]
        except KeyError:
            raise AttributeError(f"flagapp has no setting {name!r}") from None

    def get(self, name: str, default: Any = None) -> Any:
        return self.as_dict.get(name, default)

    def reload(self) -> None:
        with self._lock:
            self._merged = None


settings = FlagappSettings()


def namespace() -> str:
    """This deployment's namespace: ``FLAGAPP["NAMESPACE"]``, or 12 hex characters of the
    sha256 of the default database's ENGINE, HOST, PORT and NAME (a file database by its
    absolute path; an in-memory one with this process's id). Read at call time: a test
    run's database is renamed after start-up."""
    configured = settings.NAMESPACE
    if configured:
        return str(configured)
    db = connections["default"].settings_dict
    engine, host, port, name = (str(db.get(k) or "") for k in ("ENGINE", "HOST", "PORT", "NAME"))
    pid = os.getpid()  # part of the memo key: an in-memory database is this process's own
    value = _derived.get((engine, host, port, name, pid))
    if value is None:
        identity = name
        if engine.endswith("sqlite3"):
            # A file database by its real path; an in-memory one belongs to this process.
            in_memory = not name or name.startswith(":") or "mode=memory" in name
            identity = f"{name}@pid{pid}" if in_memory else os.path.abspath(name)
        digest = hashlib.sha256("\0".join((engine, host, port, identity)).encode("utf-8"))
        value = _derived[(engine, host, port, name, pid)] = digest.hexdigest()[:12]
    return value


_derived: dict[tuple[str, str, str, str, int], str] = {}


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "FLAGAPP":
        settings.reload()


def connect_signals() -> None:
    """Called from ``AppConfig.ready`` (kept out of import time so ``import flagapp.conf``
    works without configured settings)."""
    from django.test.signals import setting_changed

    setting_changed.connect(_on_setting_changed, dispatch_uid="flagapp.conf.reload")
