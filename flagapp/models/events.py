"""What SDKs and in-process evaluations report back: events, context samples, counts.

- ``SdkEvent``: tracking and exposure events posted to ``POST /sdk/v1/events``; guardrail
  checks and experiment analysis read them by (environment, key, timestamp).
- ``ContextSample``: a bounded, per-environment sample of recent evaluation contexts, the
  input of the blast-radius preview (``flagapp.sampling.preview_sample``), with its
  provenance (``source``) and targeting key (deduplication).
- ``SdkEventBatch``: one row per batch an SDK posted with ``X-Flagapp-Batch-Id``, unique per
  SDK key and inserted in the batch's own transaction, so a retried batch is stored once and
  answered with the first answer (``accepted``, ``rejected``, ``errors``). Rows older than
  ``EVENTS_BATCH_ID_RETENTION`` seconds are pruned.
- ``FlagEvaluationStat``: evaluation count and last-evaluated time per flag and
  environment, folded in batches (never one write per evaluation); the stale-flag report
  reads it.

Flag keys are stored as strings, not foreign keys: an SDK may report a flag that was since
deleted, and the report must survive the flag.
"""

from __future__ import annotations

from django.db import models

__all__ = ["ContextSample", "FlagEvaluationStat", "SdkEvent", "SdkEventBatch"]


class SdkEvent(models.Model):
    KIND_TRACKING = "tracking"
    KIND_EXPOSURE = "exposure"
    KIND_CHOICES = [(KIND_TRACKING, "tracking"), (KIND_EXPOSURE, "exposure")]

    environment = models.ForeignKey(
        "flagapp.Environment", on_delete=models.CASCADE, related_name="sdk_events"
    )
    kind = models.CharField(max_length=16, choices=KIND_CHOICES)
    #: The tracking event name, or the flag key of an exposure.
    key = models.CharField(max_length=200)
    flag_key = models.CharField(max_length=200, blank=True, default="")
    variant = models.CharField(max_length=200, blank=True, default="")
    targeting_key = models.CharField(max_length=200, blank=True, default="")
    #: The numeric value of a tracking event (OpenFeature ``TrackingEventDetails.value``).
    value = models.FloatField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    #: When the SDK says it happened (UTC); ``received_at`` when the server stored it.
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["environment", "key", "timestamp"], name="flagapp_evt_env_key_ts"),
            models.Index(
                fields=["environment", "flag_key", "timestamp"], name="flagapp_evt_env_flag_ts"
            ),
            # Exposures of the users who sent a batch's track events (flagapp.metrics).
            models.Index(
                fields=["environment", "targeting_key", "timestamp"],
                name="flagapp_evt_env_user_ts",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} @ {self.timestamp:%Y-%m-%d %H:%M:%S}"


class SdkEventBatch(models.Model):
    sdk_key = models.ForeignKey(
        "flagapp.SdkKey", on_delete=models.CASCADE, related_name="event_batches"
    )
    #: The SDK's ``X-Flagapp-Batch-Id`` (the Python provider sends a uuid4 hex).
    batch_id = models.CharField(max_length=64)
    received_at = models.DateTimeField(auto_now_add=True)
    #: The answer given the first time, repeated to a retry.
    accepted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sdk_key", "batch_id"], name="flagapp_evtbatch_uniq")
        ]
        indexes = [models.Index(fields=["received_at"], name="flagapp_evtbatch_received")]

    def __str__(self) -> str:
        return f"event batch {self.batch_id} ({self.accepted} accepted)"


class ContextSample(models.Model):
    environment = models.ForeignKey(
        "flagapp.Environment", on_delete=models.CASCADE, related_name="context_samples"
    )
    context = models.JSONField()
    flag_key = models.CharField(max_length=200, blank=True, default="")
    variant = models.CharField(max_length=200, blank=True, default="")
    #: The context's targetingKey ("" without one): the preview counts each user once.
    targeting_key = models.CharField(max_length=200, blank=True, default="")
    #: Where the context came from: "in-process" (this server's own evaluations, OFREP
    #: included) or "sdk:<public id>" (an SDK key's POST /sdk/v1/events).
    source = models.CharField(max_length=40, default="in-process")
    recorded_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["environment", "-id"], name="flagapp_ctx_env_id"),
            models.Index(fields=["environment", "source", "-id"], name="flagapp_ctx_env_src_id"),
        ]

    def __str__(self) -> str:
        return f"context sample {self.pk} ({self.flag_key})"


class FlagEvaluationStat(models.Model):
    environment = models.ForeignKey(
        "flagapp.Environment", on_delete=models.CASCADE, related_name="evaluation_stats"
    )
    flag_key = models.CharField(max_length=200)
    count = models.BigIntegerField(default=0)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "flag_key"], name="flagapp_evalstat_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.flag_key}: {self.count}"
