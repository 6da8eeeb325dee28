"""What SDKs and in-process evaluations report back: events, context samples, counts.

- ``SdkEvent``: tracking and exposure events posted to ``POST /sdk/v1/events``; guardrail
  checks and experiment analysis read them by (environment, key, timestamp).
- ``ContextSample``: a bounded, per-environment sample of recent evaluation contexts, the
  input of the blast-radius preview (``flagapp.sampling.recent_contexts``).
- ``FlagEvaluationStat``: evaluation count and last-evaluated time per flag and
  environment, folded in batches (never one write per evaluation); the stale-flag report
  reads it.

Flag keys are stored as strings, not foreign keys: an SDK may report a flag that was since
deleted, and the report must survive the flag.
"""

from __future__ import annotations

from django.db import models

__all__ = ["ContextSample", "FlagEvaluationStat", "SdkEvent"]


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
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} @ {self.timestamp:%Y-%m-%d %H:%M:%S}"


class ContextSample(models.Model):
    environment = models.ForeignKey(
        "flagapp.Environment", on_delete=models.CASCADE, related_name="context_samples"
    )
    context = models.JSONField()
    flag_key = models.CharField(max_length=200, blank=True, default="")
    variant = models.CharField(max_length=200, blank=True, default="")
    recorded_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["environment", "-id"], name="flagapp_ctx_env_id")]

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
