"""Signals flagapp sends.

``snapshot_published(sender=Snapshot, snapshot=..., environment_key=...)`` is sent after a
new snapshot was stored and written to the shared cache (inside the publishing transaction's
on_commit, so receivers see committed data). The evaluation cache, the SSE stream and the
Redis notifier listen to it.

``flag_changed(sender=Flag, flag=..., environment_keys=[...], actor=..., reason=...,
operation=...)`` is sent by the services after every successful write, for notifications.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["flag_changed", "snapshot_published"]

snapshot_published = Signal()
flag_changed = Signal()
