"""Signals flagapp sends.

``snapshot_published(sender=Snapshot, snapshot=..., environment_key=..., ruleset=...)`` is
sent by ``flagapp.publishing.announce`` after a new snapshot was committed and written to the
shared cache; ``ruleset`` is the engine's parsed Ruleset (receivers do not parse again).
The evaluation cache and the notifier (SSE, Redis) listen; every receiver is connected in
``FlagappConfig.ready()``, none at import time.

``sdk_key_revoked(sender=SdkKey, public_id=...)`` is sent by ``flagapp.sdk.keys`` after a
revocation; the notifier broadcasts it to the other processes.

Change notifications (docs/observability.md, "Webhooks and notifications"). Senders call
:func:`flagapp.notifications.outbox.announce` inside the change's transaction: the
dispatcher (:mod:`flagapp.notifications.dispatcher`) stores the event and its deliveries
there (the outbox: they commit or roll back with the change), then each signal is sent
**after COMMIT** with ``recorded=True`` for any other receiver (the dispatcher ignores a
recorded send; a send without it is still dispatched). No sender makes an HTTP call or
sends a mail itself:

``flag_changed(sender=Flag, flag=..., environment_keys=[...], actor=..., reason=...,
operation=..., changes={...})``: by the services after every successful write;
``changes`` is what the write set (state parts, variants), ``{}`` when not itemised.

``change_request_changed(sender=ChangeRequest, change_request=..., event=..., actor=...)``:
by ``flagapp.governance.change_requests``; ``event`` is ``proposed``, ``approved``,
``rejected`` or ``applied``.

``rollout_transition(sender=RolloutPlan, plan=..., transition=RolloutTransition)``: by the
rollout controller for every recorded transition (start, advance, complete, pause, resume,
rollback).

``flag_expiring(sender=Flag, flag=..., stage=..., label=..., recipients=[...])``: by the
expiry reminders, once per flag, expiry date and stage (``ReminderLog``); ``recipients`` are
the owner group's addresses.

``stale_flags_reported(sender=None, report=StaleReport, recipients=[...])``: by the stale
report when it lists at least one flag; ``recipients`` is ``STALE_REPORT_EMAILS``.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = [
    "change_request_changed",
    "flag_changed",
    "flag_expiring",
    "rollout_transition",
    "sdk_key_revoked",
    "snapshot_published",
    "stale_flags_reported",
]

snapshot_published = Signal()
flag_changed = Signal()
sdk_key_revoked = Signal()
change_request_changed = Signal()
rollout_transition = Signal()
flag_expiring = Signal()
stale_flags_reported = Signal()
