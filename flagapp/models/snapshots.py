"""Published ruleset snapshots: one immutable row per (environment, version).

No history here: a snapshot is never edited, and the rows themselves are the history of
what was served. ``document`` is the exact JSON text served to SDKs (so its bytes, and the
ETag derived from them, never change after publishing).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django.db import models

from .flags import Environment

__all__ = ["Snapshot"]


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
        return f"{self.environment_id} v{self.version}"

    @property
    def data(self) -> dict[str, Any]:
        """The parsed document (a new dict each call)."""
        result: dict[str, Any] = json.loads(self.document)
        return result
