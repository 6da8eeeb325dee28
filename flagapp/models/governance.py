"""Governance records: change requests (the two-person rule) and the expiry reminder log.

- ``ChangeRequest``: a proposed write to a high-risk flag or a protected environment. It
  stores the change in the services' own input shape (operation name + keyword arguments),
  the version it was proposed against, who proposed it and why, its review and its blast
  radius. Approving applies it through ``flagapp.services`` with the approved request, so
  the same validation, version check and history apply as for a direct write.
- ``ReminderLog``: one row per expiry reminder sent. Its unique constraint
  (flag, expiry date, stage) is what makes "each stage at most once" hold under task
  retries and duplicate beat runs: the second sender's insert fails, so it does not send.

Evaluation counts and last-evaluated times live in ``events.FlagEvaluationStat``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.db import models
from simple_history.models import HistoricalRecords

from flagapp.governance.operations import describe_operation

__all__ = ["ChangeRequest", "ReminderLog"]


class ChangeRequest(models.Model):
    STATUS_PENDING = "pending"
    STATUS_APPROVED = "approved"
    STATUS_REJECTED = "rejected"
    STATUS_APPLIED = "applied"
    STATUS_CONFLICTED = "conflicted"
    STATUS_WITHDRAWN = "withdrawn"
    STATUS_CHOICES = [
        (STATUS_PENDING, "pending"),
        (STATUS_APPROVED, "approved"),
        (STATUS_REJECTED, "rejected"),
        (STATUS_APPLIED, "applied"),
        (STATUS_CONFLICTED, "conflicted"),
        (STATUS_WITHDRAWN, "withdrawn"),
    ]
    #: Statuses a request never leaves.
    FINAL_STATUSES = frozenset(
        {STATUS_REJECTED, STATUS_APPLIED, STATUS_CONFLICTED, STATUS_WITHDRAWN}
    )

    flag = models.ForeignKey(
        "flagapp.Flag",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="change_requests",
    )
    #: Kept as text too, so the request stays readable after the flag is deleted.
    flag_key = models.CharField(max_length=200, db_index=True)
    environment = models.ForeignKey(
        "flagapp.Environment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="change_requests",
    )
    environment_key = models.CharField(max_length=100, blank=True, default="")
    #: The services operation to run, e.g. ``update_state`` (see docs/governance.md).
    kind = models.CharField(max_length=64)
    #: The whole change as ``ApprovalRequired.change`` describes it (``operation``,
    #: ``params``, ``flag``, ``environment``...): what ``services.apply_change`` replays.
    payload = models.JSONField(default=dict)
    #: The version of the edited object the change was proposed against (None: no check).
    base_version = models.PositiveIntegerField(null=True, blank=True)
    author = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="flagapp_change_requests",
    )
    reason = models.TextField()
    status = models.CharField(
        max_length=16, choices=STATUS_CHOICES, default=STATUS_PENDING, db_index=True
    )
    reviewer = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="flagapp_reviewed_change_requests",
    )
    review_comment = models.TextField(blank=True, default="")
    #: ``BlastRadius.as_dict()`` computed when the request was created (None: not a
    #: targeting change, or no snapshot to compare with).
    blast_radius = models.JSONField(null=True, blank=True)
    #: The stored values of the fields it changed, as they were when it was applied (so an
    #: applied request keeps showing before and after; None until applied).
    before = models.JSONField(null=True, blank=True)
    #: Why applying failed (the conflict message), for the author to redo the change.
    detail = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    # A TextField reason, as for the flag models: reasons and review comments are sentences.
    history = HistoricalRecords(history_change_reason_field=models.TextField(null=True))

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("approve_changerequest", "Can approve or reject change requests")]
        indexes = [models.Index(fields=["status", "-created_at"], name="flagapp_cr_status")]

    def __str__(self) -> str:
        env = f" in {self.environment_key}" if self.environment_key else ""
        what = describe_operation(self.kind, self.payload)  # words, not update_flag_state
        return f"#{self.pk} {what} of {self.flag_key}{env} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in (self.STATUS_PENDING, self.STATUS_APPROVED)

    @property
    def is_approved(self) -> bool:
        """What ``flagapp.policy.change_request_covers`` checks before the services apply."""
        return self.status == self.STATUS_APPROVED

    @property
    def change(self) -> dict[str, Any]:
        """The change in ``ApprovalRequired.change`` shape."""
        return {"operation": self.kind, **dict(self.payload)}


class ReminderLog(models.Model):
    flag = models.ForeignKey("flagapp.Flag", on_delete=models.CASCADE, related_name="reminders")
    expiry = models.DateField()
    #: ``before``, ``due`` or ``overdue-<k>`` (flagapp.governance.stages)
    stage = models.CharField(max_length=32)
    sent_at = models.DateTimeField(auto_now_add=True)
    recipients = models.JSONField(default=list)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "expiry", "stage"], name="flagapp_reminder_once"
            )
        ]

    def __str__(self) -> str:
        return f"reminder {self.stage} for flag {self.flag_id} (expiry {self.expiry})"
