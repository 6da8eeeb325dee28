"""Signals flagapp sends.

``snapshot_published(sender=Snapshot, snapshot=..., environment_key=..., ruleset=...)`` is
sent by ``flagapp.publishing.announce`` after a new snapshot was committed and written to the
shared cache; ``ruleset`` is the engine's parsed Ruleset (receivers do not parse again).
The evaluation cache and the notifier (SSE, Redis) listen; every receiver is connected in
``FlagappConfig.ready()``, none at import time.

``flag_changed(sender=Flag, flag=..., environment_keys=[...], actor=..., reason=...,
operation=...)`` is sent by the services after every successful write, for notifications.

``sdk_key_revoked(sender=SdkKey, public_id=...)`` is sent by ``flagapp.sdk.keys`` after a
revocation; the notifier broadcasts it to the other processes.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["flag_changed", "sdk_key_revoked", "snapshot_published"]

snapshot_published = Signal()
flag_changed = Signal()
sdk_key_revoked = Signal()
