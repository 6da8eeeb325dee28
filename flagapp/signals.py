"""Signals flagapp sends.

``snapshot_published(sender=Snapshot, snapshot=..., environment_key=..., ruleset=...)`` is
sent by ``flagapp.publishing.announce`` after a new snapshot was committed and written to the
shared cache; ``ruleset`` is the engine's parsed Ruleset (receivers do not parse again).
The evaluation cache and the notifier (SSE, Redis) listen; every receiver is connected in
``FlagappConfig.ready()``, none at import time.

``flag_changed(sender=Flag, flag=..., environment_keys=[...], actor=..., reason=...,
operation=...)`` is sent by the services after every successful write, for notifications.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["flag_changed", "snapshot_published"]

snapshot_published = Signal()
flag_changed = Signal()
