"""Published ruleset snapshots: one immutable row per (environment, version), and the
publish outbox.

No history here: a snapshot is never edited, and the rows themselves are the history of
what was served. ``document`` is the exact JSON text served to SDKs (so its bytes, and the
ETag derived from them, never change after publishing).

:class:`PublishOutbox` is the transactional outbox of the publish chain (docs/internals.md):
a write through the services inserts a row per affected environment in the *same*
transaction as the change, so "this environment must be republished" commits or rolls back
with the change itself. Publishing the environment deletes its rows; a row left behind (the
publish after commit failed, the process died) is published by the reconciler
(``flagapp.publishing.reconcile``).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django.db import models

from .flags import Environment

__all__ = ["PublishOutbox", "Snapshot"]


class Snapshot(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="snapshots")
    version = models.PositiveIntegerField()
    etag = models.CharField(max_length=80)
    document = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["environment", "-version"]
        get_latest_by = "version"
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["environment", "version"], name="flagapp_snapshot_unique_version"
            )
        ]

    def __str__(self) -> str:
        """``production v12``: the environment's key, not its row id (admin titles)."""
        return f"{self.environment.key} v{self.version}"

    @property
    def data(self) -> dict[str, Any]:
        """The parsed document (a new dict each call)."""
        result: dict[str, Any] = json.loads(self.document)
        return result


class PublishOutbox(models.Model):
    """One pending publish of one environment, written in the transaction of the change that
    needs it. Several rows for one environment are normal (one per write); any publish of
    the environment that starts after they are committed covers them all and deletes them."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "pending publish"

    def __str__(self) -> str:
        return f"publish {self.environment.key} (since {self.created_at:%Y-%m-%d %H:%M:%S})"
